import { defineConfig } from 'vitest/config';

// The benchmarks' smoke runs (bench/smoke.test.mjs): one child process at a time, each with tiny shapes.
export default defineConfig({
  test: {
    include: ['smoke.test.mjs'],
    testTimeout: 300_000,
  },
});
