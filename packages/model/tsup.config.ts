import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', 'prepare-worker': 'src/train/prepare-worker.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
