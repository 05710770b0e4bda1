import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

// Installing the packages as users will: `pnpm pack` every publishable package, `npm install` the tarballs into fresh
// folders outside the workspace (dependencies such as TensorFlow.js come from the npm registry, through npm's cache),
// and use them there. Skips, saying why, when the registry cannot be reached.

const packagesDir = path.join(repoRoot, 'packages');
const publishable = readdirSync(packagesDir)
  .filter((d) => existsSync(path.join(packagesDir, d, 'package.json')))
  .map((d) => ({
    dir: path.join(packagesDir, d),
    json: JSON.parse(readFileSync(path.join(packagesDir, d, 'package.json'), 'utf8')),
  }))
  .filter((p) => !p.json.private);
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-pack-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// The environment of a user's shell: none of the npm_config_*, pnpm or NODE_PATH settings of the `pnpm test` running us
// (pnpm's bin shims put the workspace's whole virtual store on NODE_PATH, which would hide a missing dependency).
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_|pnpm_|NODE_OPTIONS$|NODE_PATH$|VITEST|NX_)/i.test(k)),
);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...userEnv, ...env }, timeout: 480_000 });
}

const NETWORK =
  /ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|ENETUNREACH|network|socket hang up|request to .* failed/i;

/** npm-installs tarballs into a fresh folder; undefined means the registry was unreachable (the reason is returned). */
function npmInstall(dir: string, tarballs: string[], env: NodeJS.ProcessEnv = {}): string | undefined {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'a-yuan-user', private: true, type: 'module' }));
  const r = run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', ...tarballs],
    dir,
    env,
  );
  const out = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0 && NETWORK.test(out))
    return `npm registry not reachable: ${out
      .split('\n')
      .find((l) => NETWORK.test(l))
      ?.trim()}`;
  expect(r.status, out).toBe(0);
  return undefined;
}

describe('packed packages installed with npm outside the workspace', () => {
  const tarballs: Record<string, string> = {};

  it('every publishable package packs with real versions for its workspace dependencies', () => {
    expect(publishable.map((p) => p.json.name).sort()).toEqual([
      '@yuan/attention-lfa',
      '@yuan/attention-lpa',
      '@yuan/cli',
      '@yuan/comm',
      '@yuan/core',
      '@yuan/data',
      '@yuan/data-filter',
      '@yuan/eval',
      '@yuan/model',
      '@yuan/parallel-pipeline',
      '@yuan/parallel-zero',
      '@yuan/plan',
      '@yuan/quantize',
      '@yuan/serve',
      '@yuan/tensor',
      '@yuan/tensor-native',
      '@yuan/tokenizer',
      '@yuan/train',
    ]);
    const dest = path.join(tmp, 'tarballs');
    for (const p of publishable) {
      for (const entry of [p.json.main, p.json.types, ...Object.values(p.json.bin ?? {})]) {
        if (entry)
          expect(
            existsSync(path.join(p.dir, entry as string)),
            `${p.json.name}: ${entry} is not built (run \`pnpm build\`)`,
          ).toBe(true);
      }
      const r = run('pnpm', ['pack', '--pack-destination', dest], p.dir);
      expect(r.status, r.stderr).toBe(0);
      const file = readdirSync(dest).find((f) =>
        f.startsWith(`${p.json.name.replace('@', '').replace('/', '-')}-${p.json.version}`),
      );
      expect(file, `${p.json.name} tarball`).toBeDefined();
      tarballs[p.json.name] = path.join(dest, file!);
      const packed = JSON.parse(run('tar', ['-xzOf', tarballs[p.json.name], 'package/package.json'], dest).stdout);
      expect(JSON.stringify(packed), `${p.json.name}: packed package.json`).not.toMatch(/workspace:/);
      const listing = run('tar', ['-tzf', tarballs[p.json.name]], dest).stdout;
      const entries = [
        p.json.main,
        p.json.types,
        ...Object.values(p.json.bin ?? {}),
        ...Object.values<Record<string, string>>(p.json.exports ?? {}).flatMap((e) => Object.values(e)),
      ];
      for (const entry of entries)
        expect(listing, `${p.json.name}: ${entry} in the tarball`).toContain(
          `package/${String(entry).replace(/^\.\//, '')}`,
        );
      expect(listing, `${p.json.name} packs its sources or tests`).not.toMatch(/package\/(src|test)\//);
    }
  });

  it('`yuan data prepare` and `yuan train` on a tiny preset run from the installed CLI', (ctx) => {
    const dir = path.join(tmp, 'cli-user');
    const offline = npmInstall(dir, Object.values(tarballs));
    if (offline) return ctx.skip(offline);
    // the optional peers are not installed for npm users (they would download libtensorflow)
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node-gpu'))).toBe(false);
    const yuan = path.join(dir, 'node_modules/.bin/yuan');
    writeFileSync(
      path.join(dir, 'corpus.txt'),
      Array.from({ length: 40 }, (_, i) => `Line ${i}: a tiny corpus for a tiny model, written by a user.`).join('\n'),
    );
    const prep = run(yuan, ['data', 'prepare', 'corpus.txt', '--tokenizer', 'bytes', '--output', 'data'], dir);
    expect(prep.status, prep.stderr).toBe(0);
    const tiny = [
      'model.numLayers=1',
      'model.hiddenSize=32',
      'model.ffnSize=64',
      'train.seqLength=32',
      'train.microBatchSize=2',
    ].flatMap((s) => ['--set', s]);
    const train = run(
      yuan,
      ['train', '--preset', 'tiny-lfa', ...tiny, '--data', 'data', '--steps', '2', '--out', 'run', '--json'],
      dir,
    );
    expect(train.status, train.stderr).toBe(0);
    const result = JSON.parse(train.stdout.trim().split('\n').pop()!);
    expect(result.steps).toBe(2);
    expect(Number.isFinite(result.loss)).toBe(true);
    expect(readdirSync(path.join(dir, 'run')).filter((f) => f.startsWith('checkpoint-'))).toHaveLength(1);
    expect(readFileSync(path.join(dir, 'run/metrics.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(
      2,
    );
    const env = run(yuan, ['env'], dir);
    expect(env.status, env.stderr).toBe(0);
    expect(env.stdout).toMatch(/@tensorflow\/tfjs-node is not installed \(an optional peer dependency/);
  }, 600_000);

  it('@yuan/tokenizer, @yuan/data, @yuan/comm and @yuan/plan install without TensorFlow.js and work', (ctx) => {
    const dir = path.join(tmp, 'no-tensors-user');
    const offline = npmInstall(
      dir,
      ['@yuan/core', '@yuan/tokenizer', '@yuan/data', '@yuan/comm', '@yuan/plan'].map((n) => tarballs[n]),
    );
    if (offline) return ctx.skip(offline);
    expect(readdirSync(path.join(dir, 'node_modules/@yuan')).sort()).toEqual([
      'comm',
      'core',
      'data',
      'plan',
      'tokenizer',
    ]);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow')), 'no TensorFlow.js is installed').toBe(false);
    writeFileSync(path.join(dir, 'no-tensors.mjs'), readFileSync(path.join(__dirname, '../fixtures/no-tensors.mjs')));
    const r = run(process.execPath, ['no-tensors.mjs'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({
      decoded: 'héllo',
      splits: ['train', 'valid'],
      allReduce: [3, 30],
      partition: [3, 3, 2, 2],
      yuanFaster: true,
    });
  }, 600_000);

  it('a script importing only @yuan/core, @yuan/tensor and @yuan/attention-lfa runs one LFA layer forward', (ctx) => {
    const dir = path.join(tmp, 'library-user');
    const wanted = ['@yuan/core', '@yuan/tensor', '@yuan/tensor-native', '@yuan/attention-lfa'].map((n) => tarballs[n]);
    // without the OpenBLAS addon: this user runs on the WebAssembly backend
    const offline = npmInstall(dir, wanted, { YUAN_NATIVE_SKIP: '1' });
    if (offline) return ctx.skip(offline);
    expect(readdirSync(path.join(dir, 'node_modules/@yuan')).sort()).toEqual([
      'attention-lfa',
      'core',
      'tensor',
      'tensor-native',
    ]);
    writeFileSync(path.join(dir, 'lfa-layer.mjs'), readFileSync(path.join(__dirname, '../fixtures/lfa-layer.mjs')));
    const r = run(process.execPath, ['lfa-layer.mjs'], dir);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    // LFA at hidden 32: attention 4H² plus convs 2H², conv biases 1.5H and the RMSNorm H
    expect(out).toEqual({
      backend: 'wasm',
      shape: [1, 6, 32],
      parameters: 4 * 32 * 32 + 2 * 32 * 32 + 48 + 32,
      finite: true,
      causal: true,
      lastChanged: true,
    });
  }, 600_000);
});
