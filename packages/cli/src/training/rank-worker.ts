// The entry of one data-parallel rank on a worker thread (`yuan train --dp D`, transport threads).
import { threadRank } from '@yuan/comm';
import { runRank, type RankPayload } from './data-parallel.js';

const me = threadRank();
const result = await runRank(me.payload as RankPayload, 'threads');
me.reportResult(me.rank === 0 ? { ...result, history: result.history } : null);
