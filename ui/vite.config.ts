// Builds both shells in one pass: `index.html` (customer web link, served by wrenchline-server at
// `/`) and `desktop.html` (loaded by the Tauri window), sharing one `dist/` and one chunk graph.
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    rolldownOptions: {
      // Paths are resolved against the project root (this folder) by Vite.
      input: {
        web: 'index.html',
        desktop: 'desktop.html',
      },
    },
  },
});
