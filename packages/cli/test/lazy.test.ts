import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/commands/index.js';
import { repoRoot } from './run.js';

// Which modules the built binary loads, recorded by an ESM resolve hook (no timing: start-up time is bench/startup.mjs).
const dir = mkdtempSync(path.join(tmpdir(), 'yuan-lazy-'));
writeFileSync(
  path.join(dir, 'hooks.mjs'),
  "import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(process.env.YUAN_LOAD_LOG, r.url + '\\n'); return r; }\n",
);
writeFileSync(
  path.join(dir, 'register.mjs'),
  `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)});\n`,
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loadedBy(...argv: string[]): { out: string; urls: string[] } {
  const log = path.join(dir, `${argv.join('_').replace(/\W/g, '')}.log`);
  writeFileSync(log, '');
  const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
  const r = spawnSync(process.execPath, ['--import', path.join(dir, 'register.mjs'), bin, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, YUAN_LOAD_LOG: log },
  });
  expect(r.status, r.stderr).toBe(0);
  return { out: r.stdout, urls: readFileSync(log, 'utf8').trim().split('\n') };
}

describe('command modules load lazily', () => {
  it('`yuan --help` lists every command without importing any command module or TensorFlow.js', () => {
    const { out, urls } = loadedBy('--help');
    for (const c of COMMANDS) expect(out).toContain(`${c.path.join(' ')}`);
    expect(urls.some((u) => u.endsWith('/bin.js'))).toBe(true); // the hook did record
    expect(
      urls.filter((u) =>
        /tfjs|@yuan\/(model|tensor|data-filter|eval|attention)|\/(train|filter|env|eval)-\w+\.js$/.test(u),
      ),
    ).toEqual([]);
  });

  it('`yuan filter --help` imports the filter command and no TensorFlow.js, model or other command', () => {
    const { out, urls } = loadedBy('filter', '--help');
    expect(out).toMatch(/^filter and deduplicate JSONL/);
    expect(out).toContain('usage: yuan filter');
    expect(urls.some((u) => /\/filter-\w+\.js$/.test(u))).toBe(true);
    expect(urls.filter((u) => /tfjs|@yuan\/(model|tensor)|\/(train|env|eval|generate)-\w+\.js$/.test(u))).toEqual([]);
  });

  it('`yuan launch --help` and `yuan plan --help` load no TensorFlow.js, tensor, model or training package', () => {
    // launch needs @yuan/comm only, plan @yuan/plan only: both depend on @yuan/core alone
    const heavy =
      /@tensorflow|@yuan\/(tensor|model|train|serve|parallel-zero|parallel-pipeline|attention|eval|data-filter)\b/;
    for (const [word, pkg] of [
      ['launch', 'comm'],
      ['plan', 'plan'],
    ]) {
      const { out, urls } = loadedBy(word, '--help');
      expect(out).toContain(`usage: yuan ${word}`);
      expect(
        urls.some((u) => new RegExp(`/packages/${pkg}/dist/index\\.js$|@yuan/${pkg}/dist/index\\.js$`).test(u)),
        `${word} loads @yuan/${pkg}`,
      ).toBe(true);
      expect(
        urls.filter(
          (u) => heavy.test(u) || /\/packages\/(tensor|model|train|serve|parallel-zero|parallel-pipeline)\//.test(u),
        ),
      ).toEqual([]);
    }
  });

  it('`yuan plan --time` computes the step-time model without loading TensorFlow.js', () => {
    const { out, urls } = loadedBy(
      'plan',
      '--time',
      '--preset',
      'yuan2-102b',
      '--chips',
      '96',
      '--pp',
      '32',
      '--microbatches',
      '1152',
      '--seq',
      '4096',
    );
    expect(out).toMatch(/^Method 1: TP \+ PP \+ DP \(TP 8, PP 4, DP 3, A = 384\): 312\.42 s per step$/m);
    // the attention plugin (its FLOPs) and the parameter count come from the `describe` entries, which hold no tensor code
    expect(
      urls.filter((u) =>
        /@tensorflow|\/packages\/tensor\/|\/packages\/(model|attention-l[fp]a|attention-family)\/dist\/index\.js$/.test(
          u,
        ),
      ),
    ).toEqual([]);
    expect(new Set(urls.filter((u) => /\/(attention-lfa|model)\/dist\/describe\.js$/.test(u))).size).toBe(2);
  });

  it("the attention packages' `describe` entries load only @yuan/core besides their own files", () => {
    for (const entry of [
      '@yuan/model/describe',
      '@yuan/attention-lfa/describe',
      '@yuan/attention-lpa/describe',
      '@yuan/attention-family/describe',
    ]) {
      const log = path.join(dir, `${entry.replace(/\W/g, '')}.log`);
      writeFileSync(log, '');
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          path.join(dir, 'register.mjs'),
          '--input-type=module',
          '-e',
          `await import(${JSON.stringify(entry)})`,
        ],
        {
          cwd: path.join(repoRoot, 'packages/cli'),
          encoding: 'utf8',
          env: { ...process.env, YUAN_LOAD_LOG: log },
        },
      );
      expect(r.status, r.stderr).toBe(0);
      const loaded = readFileSync(log, 'utf8').trim().split('\n');
      expect(
        loaded.some((u) => u.endsWith('/dist/describe.js')),
        entry,
      ).toBe(true);
      expect(
        loaded.filter(
          (u) =>
            /tfjs|\/packages\/(tensor|tensor-native)\//.test(u) ||
            (/dist\/index\.js$/.test(u) && !/\/packages\/core\//.test(u)),
        ),
        entry,
      ).toEqual([]);
    }
  });

  it('each entry of the command list has the path and summary of the module it loads', async () => {
    for (const entry of COMMANDS) {
      const cmd = await entry.load();
      expect({ path: cmd.path, summary: cmd.summary }).toEqual({ path: entry.path, summary: entry.summary });
    }
  });
});
