// Install step of @yuan/tensor-native: builds the OpenBLAS addon with node-gyp (the package manager's own) when the BLAS headers and library are
// present, and otherwise prints one line and exits 0, so that `pnpm install` never fails because of it.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const skip = (why) => {
  rmSync(path.join(root, 'build'), { recursive: true, force: true });
  console.log(`@yuan/tensor-native: native addon skipped (${why}); yuan will use the next backend (wasm or cpu)`);
  process.exit(0);
};

if (process.env.YUAN_NATIVE_SKIP) skip('YUAN_NATIVE_SKIP is set');
if (process.platform !== 'linux') skip(`only Linux is supported, not ${process.platform}`);

const includeDirs = [
  process.env.YUAN_CBLAS_INCLUDE,
  '/usr/include/x86_64-linux-gnu',
  '/usr/include/aarch64-linux-gnu',
  '/usr/include/openblas',
  '/usr/include',
].filter(Boolean);
const include = includeDirs.find((d) => existsSync(path.join(d, 'cblas.h')));
if (!include) skip('cblas.h not found: install OpenBLAS with `apt-get install -y libopenblas-dev`');

const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
if (!libDirs.some((d) => existsSync(path.join(d, 'libopenblas.so')))) {
  skip('libopenblas.so not found: install OpenBLAS with `apt-get install -y libopenblas-dev`');
}

// Which OpenBLAS build to link. Debian ships one per threading model behind the same soname; the default one
// (libopenblas0-pthread) runs its own pool of pthreads beside the addon's OpenMP (libgomp) threads. YUAN_BLAS=openmp links
// Debian's OpenMP build (libopenblas0-openmp) by path instead, with an rpath so that the system's default build does not
// replace it at load time: its products then run on the same libgomp pool as the addon's kernels. Measured on a busy
// 2-core machine it was not a clear win (bench/README.md "Train step: one thread pool or two"), so it is opt-in.
const blasChoice = process.env.YUAN_BLAS ?? 'system';
if (blasChoice !== 'openmp' && blasChoice !== 'system') {
  console.error(`@yuan/tensor-native: YUAN_BLAS must be "openmp" or "system", not "${blasChoice}"`);
  process.exit(1);
}
const openmpDir = libDirs
  .map((d) => path.join(d, 'openblas-openmp'))
  .find((d) => existsSync(path.join(d, 'libopenblas.so.0')));
const blasLink =
  blasChoice === 'openmp' && openmpDir ? `-L${openmpDir} -l:libopenblas.so.0 -Wl,-rpath,${openmpDir}` : '-lopenblas';
const blasLabel = blasLink === '-lopenblas' ? 'the default libopenblas' : `OpenBLAS's OpenMP build from ${openmpDir}`;

// node-gyp is not a dependency of this package: npm and pnpm both ship one and name it in npm_config_node_gyp for install
// scripts. Outside an install (`node scripts/build.mjs` by hand), one installed anywhere Node can resolve it is used.
let gyp = process.env.npm_config_node_gyp;
if (!gyp || !existsSync(gyp)) {
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    skip('node-gyp not found: run this script through `npm install`/`pnpm install`, or install node-gyp');
  }
}
// Use the headers of the running Node when they are installed (Debian/NodeSource put them in <prefix>/include/node),
// so that node-gyp does not try to download them.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = [gyp, 'rebuild', '--release'];
if (existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const run = spawnSync(process.execPath, args, {
  cwd: root,
  env: { ...process.env, YUAN_CBLAS_INCLUDE: include, YUAN_BLAS_LINK: blasLink },
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
});
if (run.status !== 0) {
  const lines = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => /error/i.test(l));
  skip(`node-gyp failed: ${(lines[0] ?? `exit ${run.status}`).trim()}`);
}
console.log(`@yuan/tensor-native: built the OpenBLAS addon (cblas.h from ${include}, linked with ${blasLabel})`);
