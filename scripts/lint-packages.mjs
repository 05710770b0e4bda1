#!/usr/bin/env node
// `pnpm lint:packages [ROOT]`: packs every publishable package under ROOT/packages (default: this repository) with
// `pnpm pack`, exactly as `pnpm publish` would (workspace: ranges replaced by versions), and lints the tarball with
// publint (strict: a warning fails like an error) and @arethetypeswrong/cli. The packages are ESM-only (`"type":
// "module"`, an `import` condition only), so attw runs with `--profile esm-only`: it does not ask for CommonJS or
// node10 resolution, and still fails on anything wrong for ESM consumers (missing or mismatched types, a types file
// that resolves to the wrong format, an unresolvable entry). Prints one line per package; exits 1 when any fails.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

const here = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const root = path.resolve(process.argv[2] ?? here);
const require = createRequire(import.meta.url);
const attwPkg = require.resolve('@arethetypeswrong/cli/package.json');
const attw = path.join(path.dirname(attwPkg), JSON.parse(readFileSync(attwPkg, 'utf8')).bin.attw);
const packagesDir = path.join(root, 'packages');
if (!existsSync(packagesDir)) {
  console.error(`lint:packages: ${packagesDir} does not exist (the argument is a workspace root)`);
  process.exit(2);
}

const packages = readdirSync(packagesDir)
  .map((d) => path.join(packagesDir, d))
  .filter((dir) => existsSync(path.join(dir, 'package.json')))
  .map((dir) => ({ dir, json: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) }))
  .filter((p) => !p.json.private);

/** Runs a command; resolves to its exit code and combined output. */
function run(cmd, args, cwd) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ code: -1, out: `${out}${e.message}` }));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-lint-packages-'));

/** Packs, publints and attw-checks one package; resolves to the problems found (empty when it passes). */
async function lint({ dir, json }) {
  const dest = path.join(tmp, json.name.replace('/', '+'));
  const pack = await run('pnpm', ['pack', '--pack-destination', dest], dir);
  const tarball = pack.code === 0 && existsSync(dest) ? readdirSync(dest).find((f) => f.endsWith('.tgz')) : undefined;
  if (!tarball) return [`pnpm pack failed: ${pack.out.trim().split('\n').pop()}`];
  const file = path.join(dest, tarball);
  const problems = [];
  const data = readFileSync(file);
  const { messages, pkg } = await publint({
    pack: { tarball: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) },
    strict: true,
  });
  for (const m of messages) {
    const line = `publint ${m.type}: ${formatMessage(m, pkg, { color: false }) ?? m.code}`;
    if (m.type === 'suggestion') console.log(`${json.name}: ${line} (not a failure)`);
    else problems.push(line);
  }
  const types = await run(process.execPath, [attw, file, '--profile', 'esm-only', '--format', 'ascii'], dir);
  if (types.code !== 0) problems.push(`attw --profile esm-only:\n${types.out.trim()}`);
  return problems;
}

let failed = 0;
const queue = [...packages];
const worker = async () => {
  for (let p = queue.shift(); p; p = queue.shift()) {
    const problems = await lint(p);
    if (problems.length === 0) console.log(`${p.json.name}@${p.json.version}: publint and attw pass`);
    else {
      failed++;
      console.log(`${p.json.name}@${p.json.version}: FAILED\n  ${problems.join('\n  ')}`);
    }
  }
};
await Promise.all([worker(), worker()]);
rmSync(tmp, { recursive: true, force: true });
console.log(`lint:packages: ${packages.length - failed} of ${packages.length} packages pass publint and attw`);
process.exit(failed ? 1 : 0);
