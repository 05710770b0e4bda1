// The entry of one rank that `trainParallel` starts: a worker thread (transport `threads`; the payload comes with the
// thread's data) or a local process (`node rank-worker.js PAYLOAD.json`, torchrun's variables set by launchLocal). Rank
// 0 sends its progress and result to the starter: messages to the parent thread, or JSON lines on stdout.
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { YuanError } from '@yuan/core';
import { isThreadRank, rankFromEnvironment, threadRank } from '@yuan/comm';
import { runRankPayload, type RankEvent } from './train-parallel.js';

if (isThreadRank()) {
  const me = threadRank();
  const send = (e: RankEvent) => parentPort!.postMessage(e);
  const result = await runRankPayload(me.payload, undefined, {
    onStep: (step, total, status) => send({ yuanRankEvent: 'step', step, total, status }),
    onNote: (text) => send({ yuanRankEvent: 'note', text }),
  });
  me.reportResult(me.rank === 0 ? result : null);
} else {
  const send = (e: RankEvent) => process.stdout.write(`${JSON.stringify(e)}\n`);
  try {
    const payload = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as unknown;
    const rank = rankFromEnvironment(process.env);
    const result = await runRankPayload(payload, rank, {
      onStep: (step, total, status) => send({ yuanRankEvent: 'step', step, total, status }),
      onNote: (text) => send({ yuanRankEvent: 'note', text }),
    });
    if (rank.rank === 0) send({ yuanRankEvent: 'result', result });
  } catch (e) {
    // one line, as the CLI prints a user error: the starter reports it as this rank's failure
    const err = e as NodeJS.ErrnoException;
    const known = e instanceof YuanError || err?.code === 'ENOENT' || err?.code === 'EACCES' || err?.code === 'EISDIR';
    process.stderr.write(`error: ${known ? err.message : (err?.stack ?? String(e))}\n`);
    process.exitCode = e instanceof YuanError && e.code === 'usage' ? 2 : 1;
  }
}
