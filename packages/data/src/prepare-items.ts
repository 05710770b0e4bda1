import type { Tokenizer } from '@yuan/core';

/** One sample to tokenize: a document, a prompt/answer pair, or a YUAN line (a pair when it holds `<sep>`). */
export type Sample =
  { k: 'doc'; text: string } | { k: 'pair'; prompt: string; answer: string } | { k: 'line'; text: string };

/** Tokenized samples of a batch: ids back to back, `ends[i]` the end of sample i, `splits[i]` where its answer starts (-1: a document). */
export interface EncodedBatch {
  seq: number;
  ids: Int32Array;
  ends: Int32Array;
  /** Pair: prompt = ids[start, split), answer = ids[split + skip, end) where skip is 1 for a YUAN line (its `<sep>`), 0 for a pair. */
  splits: Int32Array;
  skips: Uint8Array;
}

/** Tokenizes a batch of samples (on a worker thread or in-process). */
export function encodeSamples(tok: Tokenizer, seq: number, samples: Sample[]): EncodedBatch {
  const parts: number[][] = [];
  const splits = new Int32Array(samples.length);
  const skips = new Uint8Array(samples.length);
  let total = 0;
  samples.forEach((s, i) => {
    let ids: number[];
    if (s.k === 'pair') {
      const p = tok.encode(s.prompt);
      ids = p.concat(tok.encode(s.answer));
      splits[i] = p.length;
    } else {
      ids = tok.encode(s.text);
      const sep = tok.special.sep;
      splits[i] = s.k === 'line' && sep !== undefined ? ids.indexOf(sep) : -1;
      skips[i] = splits[i] >= 0 ? 1 : 0;
    }
    parts.push(ids);
    total += ids.length;
  });
  const ids = new Int32Array(total);
  const ends = new Int32Array(samples.length);
  let at = 0;
  parts.forEach((p, i) => {
    ids.set(p, at);
    at += p.length;
    ends[i] = at;
  });
  return { seq, ids, ends, splits, skips };
}

/**
 * One line of YUAN's pretraining/SFT text format as `tools/preprocess_data_yuan.py` reads it: a leading `<n>` is
 * dropped, the line is stripped, `<n>` becomes a newline, `▃` is removed and `[SEP]` becomes `<sep>`. Returns
 * undefined for a line with no text.
 */
export function yuanLine(line: string): string | undefined {
  let data = line.startsWith('<n>') ? line.slice(3) : line;
  data = data.trim().replace(/[\r\n]/g, '');
  data = data.replaceAll('<n>', '\n').replaceAll('\u2583', '').replaceAll('[SEP]', '<sep>');
  return data.replace(/\n+/g, '') === '' ? undefined : data;
}
