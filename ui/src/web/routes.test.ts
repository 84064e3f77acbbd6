import { describe, expect, it } from 'vitest';
import { match } from './routes';

describe('match', () => {
  it('knows every page of the web link', () => {
    expect(match('/', '')).toEqual({ page: 'landing' });
    expect(match('/intake', '')).toEqual({ page: 'intake' });
    expect(match('/intake/', '')).toEqual({ page: 'intake' });
    expect(match('/intake/waiver', '?session=abc')).toEqual({ page: 'waiver', session: 'abc' });
    expect(match('/thank-you', '?session=abc&plan=trial')).toEqual({ page: 'thank-you', session: 'abc', plan: 'trial' });
    expect(match('/chat/abc', '')).toEqual({ page: 'chat', session: 'abc', debug: false });
    expect(match('/chat/abc', '?debug=presence')).toEqual({ page: 'chat', session: 'abc', debug: true });
    expect(match('/resume', '?token=t.k.n')).toEqual({ page: 'resume' });
  });

  it('sends everything else to the 404 page', () => {
    for (const path of ['/chat', '/chat/a/b', '/intakes', '/api/plans', '/thank-you/x']) {
      expect(match(path, '')).toEqual({ page: 'not-found' });
    }
  });

  it('tolerates missing parameters (the page explains)', () => {
    expect(match('/intake/waiver', '')).toEqual({ page: 'waiver', session: '' });
    expect(match('/resume', '')).toEqual({ page: 'resume' });
  });
});
