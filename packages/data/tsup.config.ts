import { defineConfig } from 'tsup';

export default defineConfig({
  // the tokenizing worker is its own entry: prepareData starts it as `new Worker(new URL('./prepare-worker.js', import.meta.url))`
  entry: { index: 'src/index.ts', 'prepare-worker': 'src/prepare-worker.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
});
