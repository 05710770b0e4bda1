import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 600_000,
    // --expose-gc lets the native memory test collect garbage before reading RSS
    execArgv: ['--expose-gc'],
  },
});
