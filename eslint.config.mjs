// ESLint (flat config): `pnpm lint`. Rules that catch bugs; layout is prettier's (`pnpm format`), not ESLint's.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores([
    '**/dist/',
    '**/node_modules/',
    '.nx/',
    'coverage/',
    'runs/',
    'out/',
    '.tmp/',
    '.venv-clients/',
    'bench/.venv/',
    'packages/tensor-native/build/',
  ]),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_name` marks a parameter or binding kept on purpose (a callback's position, a destructured rest)
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // a `let` a closure reads before its one assignment (a failure handler set up before the engine exists)
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // text filters, the sandbox and their tests match control characters and runs of spaces on purpose
      'no-control-regex': 'off',
      'no-regex-spaces': 'off',
    },
  },
  {
    // Promise misuse, with type information: every package's src/ is in its tsconfig.json
    files: ['packages/*/src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
);
