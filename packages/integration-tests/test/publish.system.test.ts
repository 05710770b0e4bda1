import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './helpers.js';

// Publishing as users meet it. Every package is versioned with changesets in a copy of the workspace (the repository's
// own versions and changesets stay as they are), linted as packed (publint, attw), published with `changeset publish`
// to a real local registry (verdaccio, started here on a loopback address and stopped at the end), and installed with
// npm into fresh folders outside the workspace: @yuan/data-filter alone, @yuan/tokenizer alone, the no-tensor
// packages, @yuan/attention-lfa with its peers, and @yuan/cli running `yuan train`. @yuan/* comes from verdaccio, every
// other package from the npm registry through npm's cache. Skips, saying why, when verdaccio cannot be installed or
// started, or the npm registry cannot be reached.
//
// Slow and install-heavy (a verdaccio install on first use, a publish, five npm installs, one native build): it belongs
// to the integration target, not the fast unit tests.

const VERDACCIO = '6.8.0'; // 6.10 wants Node 22
const verdaccioDir = path.join(repoRoot, 'node_modules', '.cache', `yuan-verdaccio-${VERDACCIO}`);
const changesetBin = path.join(repoRoot, 'node_modules', '.bin', 'changeset');

const packagesDir = path.join(repoRoot, 'packages');
const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const publishable = readdirSync(packagesDir)
  .filter((d) => existsSync(path.join(packagesDir, d, 'package.json')))
  .map((d) => ({ dir: d, json: readJson(path.join(packagesDir, d, 'package.json')) }))
  .filter((p) => !p.json.private);
const names = publishable.map((p) => p.json.name as string).sort();
/** The packages one process must share: peers of every package that uses them, except the CLI (the application). */
const SHARED = ['@yuan/core', '@yuan/tensor', '@tensorflow/tfjs'];

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-publish-'));
const copy = path.join(tmp, 'workspace');

// The environment of a user's shell: none of the npm_config_*, pnpm or NODE_PATH settings of the `pnpm test` running us
// (pnpm's bin shims put the workspace's whole virtual store on NODE_PATH, which would hide a missing dependency).
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_|pnpm_|NODE_OPTIONS$|NODE_PATH$|VITEST|NX_)/i.test(k)),
);

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...userEnv, ...env }, timeout: 540_000 });
}
const output = (r: SpawnSyncReturns<string>) => `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}`;
const firstLine = (text: string, re: RegExp) =>
  text
    .split('\n')
    .find((l) => re.test(l))
    ?.trim() ?? text.trim().split('\n').pop();

const NETWORK =
  /ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|ENETUNREACH|network|socket hang up|request to .* failed/i;

/** Why the registry tests cannot run (verdaccio not installable or not starting), or undefined. */
let skipReason: string | undefined;
let verdaccio: ChildProcess | undefined;
let registry = ''; // http://127.a.b.c:PORT/
let token = '';

/** A free TCP port on `host`. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * GET over a fresh connection (fetch would reuse a kept-alive socket that the registry closed while a long spawnSync
 * held the event loop). Rejects on a non-2xx status.
 */
function httpGet(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode && res.statusCode < 300
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Installs verdaccio into a cache folder (once) and starts it; returns a one-line reason when it cannot. */
async function startVerdaccio(): Promise<string | undefined> {
  const bin = path.join(verdaccioDir, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
  if (!existsSync(bin)) {
    mkdirSync(verdaccioDir, { recursive: true });
    writeFileSync(
      path.join(verdaccioDir, 'package.json'),
      JSON.stringify({ name: 'yuan-test-verdaccio', private: true }),
    );
    const r = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', `verdaccio@${VERDACCIO}`],
      verdaccioDir,
    );
    if (r.status !== 0 || !existsSync(bin))
      return `verdaccio@${VERDACCIO} could not be installed: ${firstLine(output(r), /ERR|error/)}`;
  }
  // A loopback address of its own per run, so npm's cache (shared with the user's, for --prefer-offline) never holds
  // package documents of an earlier run's registry under the same URL.
  const host = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const port = await freePort(host).catch(() => 0);
  if (!port) return `verdaccio cannot listen on ${host}`;
  const dir = path.join(tmp, 'verdaccio');
  mkdirSync(path.join(dir, 'storage'), { recursive: true });
  // Storage in the temp folder, anonymous read and publish of @yuan/*, no uplinks (npm takes everything else from the
  // npm registry), bodies big enough for the largest tarball.
  writeFileSync(
    path.join(dir, 'config.yaml'),
    [
      `storage: ${path.join(dir, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${path.join(dir, 'htpasswd')}`,
      '    max_users: 10',
      'uplinks: {}',
      'packages:',
      "  '@yuan/*':",
      '    access: $all',
      '    publish: $anonymous $authenticated',
      "  '**':",
      '    access: $all',
      'max_body_size: 200mb',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  let log = '';
  verdaccio = spawn(process.execPath, [bin, '--config', path.join(dir, 'config.yaml'), '--listen', `${host}:${port}`], {
    cwd: dir,
    env: userEnv,
  });
  verdaccio.stdout!.on('data', (d) => (log += d));
  verdaccio.stderr!.on('data', (d) => (log += d));
  registry = `http://${host}:${port}/`;
  for (let i = 0; i < 120; i++) {
    if (verdaccio.exitCode !== null) return `verdaccio exited at start: ${firstLine(log, /error|fatal/i)}`;
    const ok = await fetch(`${registry}-/ping`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i === 119) return `verdaccio did not answer on ${registry} within 60 s`;
    await new Promise((r) => setTimeout(r, 500));
  }
  // npm and pnpm publish only with a credential: a user registered on this throwaway registry gives one.
  const res = await fetch(`${registry}-/user/org.couchdb.user:yuan-test`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'yuan-test', password: 'yuan-test-password' }),
  });
  token = ((await res.json()) as { token?: string }).token ?? '';
  if (!token) return `verdaccio did not register a user (HTTP ${res.status})`;
  return undefined;
}

async function stopVerdaccio(): Promise<void> {
  const child = verdaccio;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  skipReason = await startVerdaccio();
}, 600_000);
afterAll(async () => {
  await stopVerdaccio();
  rmSync(tmp, { recursive: true, force: true });
});

/** The release type (patch/minor/major) each package gets from the repository's pending changesets. */
function pendingBumps(changesetDir: string): Map<string, string> {
  const rank = ['patch', 'minor', 'major'];
  const bumps = new Map<string, string>();
  for (const f of readdirSync(changesetDir).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
    const front = /^---\n([\s\S]*?)\n---/.exec(readFileSync(path.join(changesetDir, f), 'utf8'))?.[1] ?? '';
    for (const m of front.matchAll(/^\s*["']?(@yuan\/[a-z-]+)["']?\s*:\s*(patch|minor|major)\s*$/gm)) {
      if (rank.indexOf(m[2]) > rank.indexOf(bumps.get(m[1]) ?? '')) bumps.set(m[1], m[2]);
    }
  }
  return bumps;
}

/** semver's inc for plain x.y.z versions. */
function inc(version: string, type: string): string {
  const [major, minor, patch] = version.split('.').map(Number);
  if (type === 'major') return `${major + 1}.0.0`;
  if (type === 'minor') return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

/** Every copy of package `name` under `dir/node_modules` (nested ones included): their folders. */
function copiesOf(dir: string, name: string): string[] {
  const found: string[] = [];
  const walk = (nm: string, depth: number) => {
    if (depth > 8 || !existsSync(nm)) return;
    if (existsSync(path.join(nm, name, 'package.json'))) found.push(path.join(nm, name));
    for (const entry of readdirSync(nm)) {
      if (entry.startsWith('.')) continue;
      const pkgs = entry.startsWith('@')
        ? readdirSync(path.join(nm, entry)).map((e) => path.join(nm, entry, e))
        : [path.join(nm, entry)];
      for (const p of pkgs) walk(path.join(p, 'node_modules'), depth + 1);
    }
  };
  walk(path.join(dir, 'node_modules'), 0);
  return found;
}

/** npm-installs `specs` into a fresh folder whose .npmrc takes @yuan/* from verdaccio; a reason when npm is offline. */
function npmInstall(dir: string, specs: string[], env: NodeJS.ProcessEnv = {}): { offline?: string; out: string } {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'a-yuan-user', private: true, type: 'module' }));
  writeFileSync(path.join(dir, '.npmrc'), `@yuan:registry=${registry}\n`);
  const r = run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', ...specs],
    dir,
    env,
  );
  const out = output(r);
  if (r.status !== 0 && NETWORK.test(out) && !out.includes(registry))
    return { offline: `npm registry not reachable: ${firstLine(out, NETWORK)}`, out };
  expect(r.status, out).toBe(0);
  return { out };
}

/** Runs a fixture script (from ../fixtures) in `dir` with Node; returns the JSON of its last output line. */
function runFixture(dir: string, fixture: string): unknown {
  writeFileSync(path.join(dir, fixture), readFileSync(path.join(__dirname, '../fixtures', fixture)));
  const r = run(process.execPath, [fixture], dir);
  expect(r.status, output(r)).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

const installedYuan = (dir: string) => readdirSync(path.join(dir, 'node_modules/@yuan')).sort();

describe('publishing every package to a local registry and installing from it with npm', () => {
  /** Versions after `changeset version` in the copy, by package name. */
  const released: Record<string, string> = {};

  it('every publishable package is set up to be published on its own', () => {
    expect(names).toEqual([
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
    const license = readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8');
    expect(license).toContain('Apache License');
    const urls = new Set<string>();
    for (const { dir, json } of publishable) {
      const where = path.join(packagesDir, dir);
      const name = json.name as string;
      for (const entry of [json.main, json.types, ...Object.values(json.bin ?? {})]) {
        if (entry)
          expect(
            existsSync(path.join(where, entry as string)),
            `${name}: ${entry} is not built (run \`pnpm build\`)`,
          ).toBe(true);
      }
      const readme = existsSync(path.join(where, 'README.md'))
        ? readFileSync(path.join(where, 'README.md'), 'utf8')
        : '';
      expect(readme, `${name}: README.md with an install line`).toMatch(
        new RegExp(`npm install [^\\n]*${name.replace('/', '\\/')}(\\s|$)`),
      );
      expect(readme, `${name}: README.md with an example`).toMatch(/```(ts|js|sh)\n/);
      expect(
        existsSync(path.join(where, 'LICENSE')) && readFileSync(path.join(where, 'LICENSE'), 'utf8'),
        `${name}: LICENSE`,
      ).toBe(license);
      expect(json.license, name).toBe('Apache-2.0');
      expect(json.engines?.node, `${name}: engines.node`).toBe('>=20');
      expect(json.repository?.directory, `${name}: repository.directory`).toBe(`packages/${dir}`);
      urls.add(json.repository?.url);
      // A package that imports core, tensor or TensorFlow.js takes it as a peer (and as a dev dependency here), so
      // that a user's process has one of each; only the CLI, the application, depends on them.
      const dist = readdirSync(path.join(where, 'dist'))
        .filter((f) => f.endsWith('.js'))
        .map((f) => readFileSync(path.join(where, 'dist', f), 'utf8'))
        .join('\n');
      for (const shared of SHARED) {
        const imports =
          name !== shared &&
          new RegExp(`(?:\\bfrom\\s*|\\bimport\\s*\\(\\s*|\\brequire\\s*\\(\\s*)["']${shared}(?:/[^"']*)?["']`).test(
            dist,
          );
        if (name === '@yuan/cli') continue;
        expect(json.dependencies?.[shared], `${name}: ${shared} is a peer, not a dependency`).toBeUndefined();
        if (imports) {
          expect(json.peerDependencies?.[shared], `${name} imports ${shared}: a peer dependency`).toBeDefined();
          expect(
            json.devDependencies?.[shared],
            `${name}: ${shared} as a dev dependency in the workspace`,
          ).toBeDefined();
        }
      }
      // Exact pins between our packages would force a release of every dependent for every release of a dependency.
      for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
        for (const [dep, range] of Object.entries<string>(json[field] ?? {})) {
          if (dep.startsWith('@yuan/')) expect(range, `${name}: ${field}.${dep}`).not.toBe('workspace:*');
        }
      }
    }
    expect(urls.size, 'one repository URL for all packages').toBe(1);
    // Independent versions: no lockstep group; a minor release of a peer does not make every peer dependent major.
    const config = readJson(path.join(repoRoot, '.changeset/config.json'));
    expect(config.fixed ?? []).toEqual([]);
    expect(config.linked ?? []).toEqual([]);
    expect(config.___experimentalUnsafeOptions_WILL_CHANGE_IN_PATCH?.onlyUpdatePeerDependentsWhenOutOfRange).toBe(true);
    const scripts = readJson(path.join(repoRoot, 'package.json')).scripts;
    expect(scripts.release).toMatch(/changeset publish/);
    expect(scripts['lint:packages']).toBeDefined();
    // No version constant beside a package.json: a release would leave it behind.
    for (const { dir } of publishable) {
      const src = path.join(packagesDir, dir, 'src');
      for (const f of readdirSync(src, { recursive: true }) as string[]) {
        if (!/\.ts$/.test(f) || /\.test\.ts$/.test(f)) continue;
        expect(readFileSync(path.join(src, f), 'utf8'), `packages/${dir}/src/${f}`).not.toMatch(
          /_VERSION\s*(:\s*string\s*)?=\s*['"]\d+\.\d+\.\d+/,
        );
      }
    }
  });

  it('`changeset version` in a copy of the workspace gives each package its own version', (ctx) => {
    if (skipReason) return ctx.skip(skipReason);
    // What `pnpm publish` needs: the workspace files, the changesets, and each package as built (without node_modules,
    // sources, tests or the native build folder).
    mkdirSync(copy);
    for (const f of ['package.json', 'pnpm-workspace.yaml', 'LICENSE'])
      cpSync(path.join(repoRoot, f), path.join(copy, f));
    cpSync(path.join(repoRoot, '.changeset'), path.join(copy, '.changeset'), { recursive: true });
    for (const { dir } of publishable) {
      const from = path.join(packagesDir, dir);
      cpSync(from, path.join(copy, 'packages', dir), {
        recursive: true,
        filter: (src) =>
          !['node_modules', 'src', 'test', 'build'].includes(path.relative(from, src).split(path.sep)[0]),
      });
    }
    const before = Object.fromEntries(publishable.map((p) => [p.json.name, p.json.version as string]));
    const bumps = pendingBumps(path.join(repoRoot, '.changeset'));
    expect(bumps.size, 'pending changesets').toBeGreaterThan(0);
    const r = run(changesetBin, ['version'], copy);
    expect(r.status, output(r)).toBe(0);
    const after = () =>
      Object.fromEntries(
        publishable.map((p) => [
          p.json.name,
          readJson(path.join(copy, 'packages', p.dir, 'package.json')).version as string,
        ]),
      );
    const first = after();
    for (const name of names) {
      const own = bumps.get(name);
      // its own changesets decide; a package without any is released as a patch when a dependency moved, or not at all
      if (own) expect(first[name], `${name}: ${before[name]} + ${own}`).toBe(inc(before[name], own));
      else expect([before[name], inc(before[name], 'patch')], name).toContain(first[name]);
    }
    expect(
      readdirSync(path.join(copy, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md'),
      'changesets consumed',
    ).toEqual([]);
    expect(existsSync(path.join(copy, 'packages/core/CHANGELOG.md'))).toBe(true);
    // A later patch of the tokenizer alone releases it and its dependents, and leaves @yuan/core where it is.
    writeFileSync(
      path.join(copy, '.changeset/tokenizer-patch.md'),
      "---\n'@yuan/tokenizer': patch\n---\n\nA patch of the tokenizer alone.\n",
    );
    const again = run(changesetBin, ['version'], copy);
    expect(again.status, output(again)).toBe(0);
    Object.assign(released, after());
    expect(released['@yuan/tokenizer']).toBe(inc(first['@yuan/tokenizer'], 'patch'));
    expect(released['@yuan/core'], 'core is not versioned in lockstep').toBe(first['@yuan/core']);
    expect(released['@yuan/comm'], 'comm does not use the tokenizer').toBe(first['@yuan/comm']);
    // the repository itself is untouched
    for (const p of publishable)
      expect(readJson(path.join(packagesDir, p.dir, 'package.json')).version).toBe(before[p.json.name]);
  }, 300_000);

  it('publint and attw pass for every package as it will be published', (ctx) => {
    if (skipReason) return ctx.skip(skipReason);
    expect(Object.keys(released), 'the versioned copy').toHaveLength(names.length);
    const r = run(process.execPath, [path.join(repoRoot, 'scripts/lint-packages.mjs'), copy], repoRoot);
    expect(r.status, output(r)).toBe(0);
    expect(r.stdout).toContain(`${names.length} of ${names.length} packages pass publint and attw`);
  }, 600_000);

  it('`changeset publish` puts every package on the registry with real version ranges', async (ctx) => {
    if (skipReason) return ctx.skip(skipReason);
    expect(Object.keys(released), 'the versioned copy').toHaveLength(names.length);
    const host = registry.replace(/^http:/, '');
    writeFileSync(path.join(copy, '.npmrc'), `@yuan:registry=${registry}\n${host}:_authToken=${token}\n`);
    // changesets asks the registry of the scope which versions exist, then runs `pnpm publish` for the others
    const r = run(changesetBin, ['publish', '--no-git-tag'], copy, { 'npm_config_@yuan:registry': registry });
    expect(r.status, output(r)).toBe(0);
    const peers = new Map<string, string>();
    for (const { dir, json } of publishable) {
      const name = json.name as string;
      const doc = JSON.parse((await httpGet(`${registry}${name.replace('/', '%2f')}`)).toString('utf8')) as {
        'dist-tags': { latest: string };
        versions: Record<
          string,
          {
            dependencies?: Record<string, string>;
            optionalDependencies?: Record<string, string>;
            peerDependencies?: Record<string, string>;
            dist: { tarball: string };
          }
        >;
      };
      expect(doc['dist-tags']?.latest, `${name} on the registry`).toBe(released[name]);
      const manifest = doc.versions[released[name]];
      expect(JSON.stringify(manifest), `${name}: published manifest`).not.toMatch(/workspace:/);
      for (const field of ['dependencies', 'optionalDependencies'] as const) {
        for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
          if (dep.startsWith('@yuan/')) expect(range, `${name}: ${field}.${dep}`).toBe(`^${released[dep]}`);
        }
      }
      for (const [dep, range] of Object.entries(manifest.peerDependencies ?? {})) peers.set(`${name} → ${dep}`, range);
      const tgz = path.join(tmp, `${dir}.tgz`);
      writeFileSync(tgz, await httpGet(manifest.dist.tarball));
      const listing = run('tar', ['-tzf', tgz], tmp).stdout;
      for (const f of ['package.json', 'README.md', 'LICENSE', String(json.main).replace(/^\.\//, '')])
        expect(listing, `${name}: ${f} in the tarball`).toContain(`package/${f}`);
      expect(listing, `${name} publishes its sources or tests`).not.toMatch(/package\/(src|test)\//);
    }
    // the peers as published: core and tensor over the 0.x line, TensorFlow.js from 4.22
    expect(peers.get('@yuan/attention-lfa → @yuan/core')).toBe('>=0.1.0 <1.0.0');
    expect(peers.get('@yuan/attention-lfa → @yuan/tensor')).toBe('>=0.1.0 <1.0.0');
    expect(peers.get('@yuan/tensor → @tensorflow/tfjs')).toBe('^4.22.0');
    expect(peers.get('@yuan/tensor-native → @tensorflow/tfjs')).toBe('^4.22.0');
  }, 600_000);

  /** Skips a test when verdaccio is missing or the publish above did not happen. */
  const needsPublished = (ctx: { skip: (note?: string) => never }) => {
    if (skipReason) ctx.skip(skipReason);
    expect(Object.keys(released), 'published packages').toHaveLength(names.length);
  };

  it('@yuan/data-filter installs alone, with no TensorFlow.js, and filters', (ctx) => {
    needsPublished(ctx);
    const dir = path.join(tmp, 'data-filter-user');
    const { offline } = npmInstall(dir, ['@yuan/data-filter']);
    if (offline) return ctx.skip(offline);
    expect(installedYuan(dir), 'its peer @yuan/core comes with it').toEqual(['core', 'data-filter']);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow')), 'no TensorFlow.js is installed').toBe(false);
    expect(runFixture(dir, 'data-filter-alone.mjs')).toEqual({
      documents: 4,
      kept: ['a'],
      dropped: ['b:minhash', 'a-again:exact-dedup', 'short:length'],
    });
  }, 600_000);

  it('@yuan/tokenizer installs alone, with no TensorFlow.js, and tokenizes', (ctx) => {
    needsPublished(ctx);
    const dir = path.join(tmp, 'tokenizer-user');
    const { offline } = npmInstall(dir, ['@yuan/tokenizer']);
    if (offline) return ctx.skip(offline);
    expect(installedYuan(dir)).toEqual(['core', 'tokenizer']);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow')), 'no TensorFlow.js is installed').toBe(false);
    expect(readJson(path.join(dir, 'node_modules/@yuan/tokenizer/package.json')).version).toBe(
      released['@yuan/tokenizer'],
    );
    expect(runFixture(dir, 'tokenizer-alone.mjs')).toEqual({
      ids: 11,
      eod: true,
      decoded: '元 héllo<eod>',
      text: '2 + 2 = 4 ✓',
      stopped: true,
    });
  }, 600_000);

  it('@yuan/data, @yuan/comm and @yuan/plan install without TensorFlow.js and work', (ctx) => {
    needsPublished(ctx);
    const dir = path.join(tmp, 'no-tensors-user');
    const { offline } = npmInstall(dir, ['@yuan/tokenizer', '@yuan/data', '@yuan/comm', '@yuan/plan']);
    if (offline) return ctx.skip(offline);
    expect(installedYuan(dir)).toEqual(['comm', 'core', 'data', 'plan', 'tokenizer']);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow')), 'no TensorFlow.js is installed').toBe(false);
    expect(runFixture(dir, 'no-tensors.mjs')).toEqual({
      decoded: 'héllo',
      splits: ['train', 'valid'],
      allReduce: [3, 30],
      partition: [3, 3, 2, 2],
      yuanFaster: true,
      commVersion: released['@yuan/comm'],
    });
  }, 600_000);

  it('@yuan/attention-lfa with its peers runs one LFA layer, on one copy of core, tensor and TensorFlow.js', (ctx) => {
    needsPublished(ctx);
    const dir = path.join(tmp, 'library-user');
    // the README's install line; without the OpenBLAS addon this user runs on the WebAssembly backend
    const { offline } = npmInstall(dir, ['@yuan/attention-lfa', '@yuan/core', '@yuan/tensor', '@tensorflow/tfjs'], {
      YUAN_NATIVE_SKIP: '1',
    });
    if (offline) return ctx.skip(offline);
    expect(installedYuan(dir)).toEqual(['attention-lfa', 'core', 'tensor', 'tensor-native']);
    for (const shared of ['@yuan/core', '@yuan/tensor', '@tensorflow/tfjs', '@tensorflow/tfjs-core'])
      expect(copiesOf(dir, shared), shared).toHaveLength(1);
    const out = runFixture(dir, 'lfa-layer.mjs');
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

  it('@yuan/cli installs with npm (building the native addon) and `yuan train` runs a tiny preset', (ctx) => {
    needsPublished(ctx);
    const dir = path.join(tmp, 'cli-user');
    const { offline, out } = npmInstall(dir, ['@yuan/cli']);
    if (offline) return ctx.skip(offline);
    // tensor-native's install step ran and ended well: the addon built, or one line saying why not (then wasm runs);
    // where the workspace's own install built it, npm's must too
    expect(out).toMatch(/@yuan\/tensor-native: (built the OpenBLAS addon|native addon skipped)/);
    if (existsSync(path.join(packagesDir, 'tensor-native/build/Release/yuan_native.node'))) {
      expect(out, 'the OpenBLAS addon builds in an npm install as in the workspace').toMatch(
        /@yuan\/tensor-native: built the OpenBLAS addon/,
      );
      expect(existsSync(path.join(dir, 'node_modules/@yuan/tensor-native/build/Release/yuan_native.node'))).toBe(true);
    }
    for (const shared of ['@yuan/core', '@yuan/tensor', '@tensorflow/tfjs-core'])
      expect(copiesOf(dir, shared), shared).toHaveLength(1);
    // the optional peers are not installed for npm users (they would download libtensorflow)
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules/@tensorflow/tfjs-node-gpu'))).toBe(false);
    const yuan = path.join(dir, 'node_modules/.bin/yuan');
    writeFileSync(
      path.join(dir, 'corpus.txt'),
      Array.from({ length: 40 }, (_, i) => `Line ${i}: a tiny corpus for a tiny model, written by a user.`).join('\n'),
    );
    const prep = run(yuan, ['data', 'prepare', 'corpus.txt', '--tokenizer', 'bytes', '--output', 'data'], dir);
    expect(prep.status, output(prep)).toBe(0);
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
    expect(train.status, output(train)).toBe(0);
    const result = JSON.parse(train.stdout.trim().split('\n').pop()!);
    expect(result.steps).toBe(2);
    expect(Number.isFinite(result.loss)).toBe(true);
    expect(readdirSync(path.join(dir, 'run')).filter((f) => f.startsWith('checkpoint-'))).toHaveLength(1);
    expect(readFileSync(path.join(dir, 'run/metrics.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(
      2,
    );
    const env = run(yuan, ['env'], dir);
    expect(env.status, output(env)).toBe(0);
    expect(env.stdout).toMatch(/@tensorflow\/tfjs-node is not installed \(an optional peer dependency/);
    // the backend matches what the install step said: native when the addon was built
    if (/built the OpenBLAS addon/.test(out)) expect(env.stdout).toMatch(/^backend +native /m);
  }, 600_000);
});
