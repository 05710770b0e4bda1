import { cpSync } from 'node:fs';
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // the sandbox's Python files are read at run time from python/ beside the module (src/sandbox/python-source.ts)
  onSuccess: async () => {
    cpSync('src/sandbox/python', 'dist/python', { recursive: true });
  },
});
