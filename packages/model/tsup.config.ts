import { defineConfig } from 'tsup';

export default defineConfig({
  // `describe`: mha without its tensor code and the parameter list, an entry that loads no TensorFlow.js
  entry: { index: 'src/index.ts', describe: 'src/describe.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
