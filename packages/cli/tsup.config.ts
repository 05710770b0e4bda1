import { defineConfig } from 'tsup';

export default defineConfig({
  // the rank worker is its own entry: `yuan train --dp D` starts it on worker threads
  entry: { index: 'src/index.ts', bin: 'src/bin.ts', 'training/rank-worker': 'src/training/rank-worker.ts' },
  format: ['esm'],
  dts: { entry: { index: 'src/index.ts' } },
  clean: true,
  sourcemap: true,
  target: 'node20',
});
