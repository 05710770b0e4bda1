import { defineConfig } from 'vitest/config';
import { testFiles } from '../../vitest.shared.ts';

// `vitest run` takes the unit tests, `vitest run --mode system` the *.system.test.ts files (../../vitest.shared.ts)
export default defineConfig(({ mode }) => ({
  test: { ...testFiles(mode, import.meta.dirname), testTimeout: 300_000, hookTimeout: 120_000 },
}));
