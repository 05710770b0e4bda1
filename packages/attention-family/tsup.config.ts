import { defineConfig } from 'tsup';

export default defineConfig({
  // `describe`: the plugin without its tensor code, an entry that loads no TensorFlow.js (`yuan plan --time`)
  entry: { index: 'src/index.ts', describe: 'src/describe.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
