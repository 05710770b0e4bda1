// Start-up time of `yuan --help` and `yuan filter --help` against plain `node -e ''` (the floor: Node itself).
// Run: `node bench/startup.mjs [runs]` after `pnpm build`. Runs are interleaved (node, help, filter help, node, ...)
// so that load from other work on the machine slows each alike; prints the median of each and its ratio to the floor.
// Add commands to time with --cmd 'train --help' (repeatable). --smoke: 1 run each (after the warm-up round), to check
// that the benchmark runs (the test suite does this).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'packages', 'cli', 'dist', 'bin.js');
if (!existsSync(bin)) {
  console.error(`${bin} is not built: run \`pnpm build\` first`);
  process.exit(1);
}
const args = process.argv.slice(2);
const runs = Number(args.find((a) => /^\d+$/.test(a)) ?? (args.includes('--smoke') ? 1 : 21));
const extra = args.flatMap((a, i) => (a === '--cmd' && args[i + 1] ? [args[i + 1]] : []));

const cases = [
  { name: "node -e ''", argv: ['-e', ''] },
  { name: 'yuan --help', argv: [bin, '--help'] },
  { name: 'yuan filter --help', argv: [bin, 'filter', '--help'] },
  ...extra.map((c) => ({ name: `yuan ${c}`, argv: [bin, ...c.split(' ')] })),
];

const times = cases.map(() => []);
for (let r = 0; r < runs + 1; r++) {
  cases.forEach((c, i) => {
    const t0 = process.hrtime.bigint();
    const p = spawnSync(process.execPath, c.argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (p.status !== 0) throw new Error(`${c.name} exited with ${p.status}: ${p.stderr}`);
    if (r > 0) times[i].push(ms); // the first round warms the file cache
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const floor = median(times[0]);
console.log(`median of ${runs} interleaved runs each (node ${process.version})`);
console.log(`${'command'.padEnd(28)} ${'ms'.padStart(7)}  vs node -e ''`);
cases.forEach((c, i) => {
  const m = median(times[i]);
  console.log(`${c.name.padEnd(28)} ${m.toFixed(1).padStart(7)}  ${(m / floor).toFixed(2)}x`);
});
