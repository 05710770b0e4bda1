// The decode kernels alone: y = x · Wᵀ for each weight format at the yuan2-2b layer shapes (q/k/v/o 2048×2048, up/gate
// 8192×2048, down 2048×8192), one row and a batch of 4, as GB of stored weight per second of CPU time, against a plain
// read of memory (`readAll`) on the same threads, timed the same way, in the same run. CPU time (not wall) so that a
// loaded machine, which takes the cores away, does not count; the ratio is the fraction of the read speed the kernel
// reaches. Each weight is held in several copies (≥ 64 MB together) so that no copy is in the caches.
//
//   node bench/gemv.mjs [--formats fp32,bf16,int8,int4 --rows 1,4 --threads 1 --repeat 5]
//   node bench/gemv.mjs --smoke        # small shapes, one repeat
import { parseArgs } from 'node:util';
import { loadDecodeKernels, weightFormatPlugins } from '@yuan/tensor';

const { values: opt } = parseArgs({
  options: {
    smoke: { type: 'boolean' },
    formats: { type: 'string', default: 'fp32,bf16,int8,int4' },
    rows: { type: 'string', default: '1,4' },
    threads: { type: 'string', default: '1' },
    repeat: { type: 'string' },
  },
});
const smoke = Boolean(opt.smoke);
const { kernels: k, reason } = await loadDecodeKernels();
if (!k) {
  console.log(`skipped (the native addon is not built: ${reason})`);
  process.exit(0);
}
const threads = k.setDecodeThreads(Number(opt.threads));
const repeat = Number(opt.repeat ?? (smoke ? 1 : 5));
const shapes = smoke
  ? [
      [256, 256],
      [512, 256],
    ]
  : [
      [2048, 2048],
      [8192, 2048],
      [2048, 8192],
    ];
const minBytes = smoke ? 4e6 : 64e6;
const cpuMs = (f) => {
  const c = process.cpuUsage();
  f();
  const u = process.cpuUsage(c);
  return (u.user + u.system) / 1000 / threads;
};
const big = new Float32Array((minBytes / 4) | 0).fill(1);
const readGBs = () => {
  let best = Infinity;
  for (let i = 0; i < 3; i++)
    best = Math.min(
      best,
      cpuMs(() => k.readAll(big)),
    );
  return big.byteLength / best / 1e6;
};
console.log(
  `${threads} thread(s); GB of weights per CPU-second, against readAll of ${(big.byteLength / 1e6).toFixed(0)} MB`,
);
console.log('format  shape        rows  ms/call  GB/s   read GB/s  ratio');
for (const [out, inF] of shapes) {
  for (const name of opt.formats.split(',')) {
    const fmt = weightFormatPlugins.find((f) => f.name === name);
    if (!fmt) {
      console.error(`error: unknown format ${name}`);
      process.exit(2);
    }
    const one = fmt.random(out, inF, 1, 0.02);
    const copies = Math.max(2, Math.ceil(minBytes / one.bytes));
    const ws = [one, ...Array.from({ length: copies - 1 }, (_, i) => fmt.random(out, inF, i + 2, 0.02))];
    for (const n of opt.rows.split(',').map(Number)) {
      const x = new Float32Array(n * inF).map((_, i) => Math.sin(i));
      const y = new Float32Array(n * out);
      for (const w of ws) fmt.matmul(w, x, n, y, k);
      let best = Infinity;
      for (let r = 0; r < repeat; r++)
        best = Math.min(best, cpuMs(() => ws.forEach((w) => fmt.matmul(w, x, n, y, k))) / copies);
      const gbs = one.bytes / best / 1e6;
      const read = readGBs();
      console.log(
        `${name.padEnd(6)}  ${`${out}x${inF}`.padEnd(11)}  ${String(n).padStart(4)}  ${best.toFixed(3).padStart(7)}  ${gbs.toFixed(1).padStart(5)}  ${read.toFixed(1).padStart(9)}  ${(gbs / read).toFixed(2)}x`,
      );
    }
  }
}
