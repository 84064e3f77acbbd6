import { describe, expect, it } from 'vitest';

// Every source file of the UI, as text.
const sources = import.meta.glob<string>('/src/**/*.{ts,svelte}', { query: '?raw', import: 'default', eager: true });

describe('the backend boundary', () => {
  it('keeps @tauri-apps imports inside src/lib/backend/', () => {
    const offenders = Object.entries(sources)
      .filter(([path]) => !path.startsWith('/src/lib/backend/') && !path.endsWith('.test.ts'))
      .filter(([, text]) => /from\s+['"]@tauri-apps\/|import\(\s*['"]@tauri-apps\//.test(text))
      .map(([path]) => path);
    expect(Object.keys(sources).length).toBeGreaterThan(10);
    expect(offenders).toEqual([]);
  });

  it('never renders HTML from strings', () => {
    const offenders = Object.entries(sources)
      .filter(([path]) => path.endsWith('.svelte'))
      .filter(([, text]) => text.includes('{@html'))
      .map(([path]) => path);
    expect(offenders).toEqual([]);
  });
});
