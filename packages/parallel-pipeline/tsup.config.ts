import { defineConfig } from 'tsup';

export default defineConfig({
  // the stage worker is its own entry: the coordinator starts it as `new Worker(new URL('./stage-worker.js', import.meta.url))`;
  // so is the rank entry `trainParallel` starts as worker threads or local processes; `testing` is the test-only entry
  // (fault injection), left out of the published files (package.json `files`)
  entry: {
    index: 'src/index.ts',
    'stage-worker': 'src/runtime/worker.ts',
    'rank-worker': 'src/rank-worker.ts',
    testing: 'src/testing.ts',
  },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
});
