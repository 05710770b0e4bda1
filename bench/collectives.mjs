// Collective bandwidth of each transport against a plain copy of the same bytes, measured in the same run.
//   node bench/collectives.mjs [--ranks 2] [--max-mb 256] [--transports threads,tcp]
// --smoke: 1 MB only (--max-mb 1), to check that the benchmark runs on both transports (the test suite does this).
// For each size (1 MB … max, ×4) and op (allReduce, reduceScatter, allGather) it prints the time per call, the data
// rate (buffer bytes / time) and the ratio of the op's time to one memcpy of the buffer (TypedArray.set) on rank 0.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createProcessGroup, isThreadRank, launchLocal, spawnThreadRanks, threadRank } from '@yuan/comm';

const OPS = ['allReduce', 'reduceScatter', 'allGather'];

async function measure(g, sizesMb) {
  const rows = [];
  for (const mb of sizesMb) {
    const n = (mb << 20) / 4;
    const buf = new Float32Array(n).fill(1);
    const iters = Math.max(2, Math.min(10, Math.floor(64 / mb)));
    const src = new Float32Array(n).fill(2);
    const copyStart = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) buf.set(src);
    const copyMs = Number(process.hrtime.bigint() - copyStart) / 1e6 / iters;
    for (const op of OPS) {
      await g[op](buf); // warm-up
      await g.barrier();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; i++) await g[op](buf);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6 / iters;
      rows.push({ mb, op, ms, copyMs });
    }
  }
  return rows;
}

const argv = process.argv.slice(2);
if (isThreadRank()) {
  const { payload, reportResult } = threadRank();
  const g = await createProcessGroup({ transport: 'threads', timeoutMs: 600_000 });
  const rows = await measure(g, payload.sizes);
  if (g.rank === 0) reportResult(rows);
  await g.close();
} else if (argv[0] === '--rank') {
  const sizes = JSON.parse(argv[1]);
  const g = await createProcessGroup({ transport: 'tcp', timeoutMs: 600_000 });
  const rows = await measure(g, sizes);
  if (g.rank === 0) console.log(`ROWS ${JSON.stringify(rows)}`);
  await g.close();
} else {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      ranks: { type: 'string', default: '2' },
      'max-mb': { type: 'string', default: argv.includes('--smoke') ? '1' : '256' },
      transports: { type: 'string', default: 'threads,tcp' },
    },
  });
  const ranks = Number(values.ranks);
  const sizes = [];
  for (let mb = 1; mb <= Number(values['max-mb']); mb *= 4) sizes.push(mb);
  const self = fileURLToPath(import.meta.url);
  console.log(
    `collectives over ${ranks} ranks; ratio = op time / time of one copy of the same bytes (lower is better)`,
  );
  console.log('transport  op             MB    ms/call   GB/s   copy GB/s   ratio');
  for (const transport of values.transports.split(',')) {
    let rows;
    if (transport === 'threads') {
      rows = (await spawnThreadRanks(new URL(import.meta.url), ranks, { sizes }, { timeoutMs: 600_000 }))[0];
    } else if (transport === 'tcp') {
      let out = '';
      const res = await launchLocal({
        nproc: ranks,
        masterPort: 29000 + (process.pid % 1000),
        command: [process.execPath, self, '--rank', JSON.stringify(sizes)],
        onLine: (r, s, l) => {
          if (l.startsWith('ROWS ')) out = l.slice(5);
          else if (s === 'stderr') console.error(`[rank ${r}] ${l}`);
        },
      });
      if (res.code !== 0) throw new Error(`tcp ranks failed: ${JSON.stringify(res.failures)}`);
      rows = JSON.parse(out);
    } else throw new Error(`unknown transport ${transport}`);
    for (const r of rows) {
      const gbs = r.mb / 1024 / (r.ms / 1000);
      const copyGbs = r.mb / 1024 / (r.copyMs / 1000);
      console.log(
        `${transport.padEnd(10)} ${r.op.padEnd(14)} ${String(r.mb).padStart(4)} ${r.ms.toFixed(2).padStart(10)} ${gbs.toFixed(2).padStart(6)} ${copyGbs.toFixed(2).padStart(11)} ${(r.ms / r.copyMs).toFixed(1).padStart(7)}`,
      );
    }
  }
}
