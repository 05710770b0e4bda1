import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Rng, YuanError, type Tokenizer } from '@yuan/core';
import { PackedSplit, readPackedIndex, type Batch } from '@yuan/data';

/** How many calibration windows to draw and how long. Defaults (the CLI's): 256 samples of 512 tokens, seed 0. */
export interface CalibrationOptions {
  /** Number of windows. */
  samples: number;
  /** Tokens per window. */
  seqLength: number;
  /** Seed of the window choice. */
  seed: number;
}

/** The most text read from a calibration text file (its start), in bytes: 64 MiB. */
export const CALIBRATION_TEXT_BYTES = 64 << 20;

/**
 * Draws `samples` windows of `seqLength` token ids, as GPTQ does (random crops of a corpus), from either a text file
 * (its first 64 MiB, tokenized with `tokenizer`, windows at seeded random offsets of the token stream) or a packed data
 * folder of `yuan data prepare` (or a Megatron PREFIX: distinct seeded windows of its train split; with fewer windows
 * than samples, windows repeat). A source shorter than one window, a missing file or a text source without a tokenizer
 * is a one-line error.
 */
export async function calibrationWindows(
  source: string,
  tokenizer: Tokenizer | undefined,
  o: CalibrationOptions,
): Promise<Int32Array[]> {
  if (!(Number.isInteger(o.samples) && o.samples > 0))
    throw new YuanError('usage', `calibration samples ${o.samples}: expected a positive integer`);
  if (!(Number.isInteger(o.seqLength) && o.seqLength > 1))
    throw new YuanError('usage', `calibration sequence length ${o.seqLength}: expected an integer above 1`);
  const rng = new Rng(o.seed);
  const isPacked =
    (existsSync(source) && statSync(source).isDirectory()) || (!existsSync(source) && existsSync(`${source}.idx`));
  if (isPacked) return packedWindows(source, o, rng);
  if (!existsSync(source)) throw new YuanError('input', `calibration file not found: ${source}`);
  if (!tokenizer)
    throw new YuanError(
      'usage',
      `calibration text ${source} needs a tokenizer: the model names none, give --tokenizer FILE.model|bytes`,
    );
  const fh = await open(source, 'r');
  let text: string;
  try {
    const size = Math.min((await fh.stat()).size, CALIBRATION_TEXT_BYTES);
    const buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
    text = buf.toString('utf8');
  } finally {
    await fh.close();
  }
  const ids = tokenizer.encode(text);
  if (ids.length < o.seqLength) {
    throw new YuanError(
      'input',
      `calibration text ${source} has ${ids.length} tokens, fewer than one window of ${o.seqLength} (lower --seq)`,
    );
  }
  const windows: Int32Array[] = [];
  for (let s = 0; s < o.samples; s++) {
    const start = rng.int(ids.length - o.seqLength + 1);
    windows.push(Int32Array.from(ids.slice(start, start + o.seqLength)));
  }
  return windows;
}

function packedWindows(dir: string, o: CalibrationOptions, rng: Rng): Int32Array[] {
  const index = readPackedIndex(dir);
  const split = PackedSplit.open(dir, index, 'train');
  try {
    const count = split.windows(o.seqLength);
    if (count < 1)
      throw new YuanError(
        'input',
        `calibration data ${dir} has ${split.tokens} tokens, fewer than one window of ${o.seqLength} (lower --seq)`,
      );
    // distinct windows while there are enough (a partial Fisher–Yates shuffle), else with repeats
    const order = Array.from({ length: count }, (_, i) => i);
    const picks: number[] = [];
    for (let s = 0; s < o.samples; s++) {
      const k = s % count;
      const j = k + rng.int(count - k);
      [order[k], order[j]] = [order[j], order[k]];
      picks.push(order[k]);
    }
    const t = o.seqLength;
    const batch: Batch = {
      rows: 1,
      seqLength: t,
      ids: new Int32Array(t),
      targets: new Int32Array(t),
      mask: new Float32Array(t),
      positions: new Int32Array(t),
    };
    return picks.map((w) => {
      split.readWindow(w, batch, 0);
      return Int32Array.from(batch.ids);
    });
  } finally {
    split.close();
  }
}
