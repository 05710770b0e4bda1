import { YuanError } from '@yuan/core';

/** A shard of the input: lines whose global index ≡ index (mod count). */
export interface Shard {
  index: number;
  count: number;
}

/** Parses `I/N` (0 ≤ I < N); anything else is a usage error naming the value. */
export function parseShard(value: string | Shard | undefined): Shard {
  if (value === undefined) return { index: 0, count: 1 };
  if (typeof value !== 'string') {
    if (
      Number.isInteger(value.index) &&
      Number.isInteger(value.count) &&
      value.count >= 1 &&
      value.index >= 0 &&
      value.index < value.count
    )
      return value;
    throw new YuanError('usage', `shard ${JSON.stringify(value)} must have integers 0 <= index < count`);
  }
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count)
    throw new YuanError('usage', `--shard "${value}" must be I/N with 0 <= I < N, e.g. 0/4`);
  return { index, count };
}
