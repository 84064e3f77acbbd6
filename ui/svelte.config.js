// Svelte compiler options shared by Vite, svelte-check and vitest.
export default {
  compilerOptions: {
    runes: true,
  },
};
