// The corpus of bench/filter.mjs, shared with bench/filter-equivalence.mjs (which must test exactly what the bench
// times).
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Real text (WikiText paragraphs, GSM8K, gaokao passages) from `datasets` when it exists, else generated sentences. */
export function benchTexts(datasets) {
  const texts = [];
  if (existsSync(datasets)) {
    for (const l of readFileSync(path.join(datasets, 'wikitext-2', 'test.txt'), 'utf8').split('\n'))
      if (l.length > 200) texts.push(l.trim());
    for (const l of readFileSync(path.join(datasets, 'gsm8k', 'train.jsonl'), 'utf8')
      .trim()
      .split('\n')) {
      const g = JSON.parse(l);
      texts.push(`${g.question}\n${g.answer}`);
    }
    for (const l of readFileSync(path.join(datasets, 'agieval', 'gaokao-chinese.jsonl'), 'utf8')
      .trim()
      .split('\n')) {
      const p = JSON.parse(l).passage;
      if (p) texts.push(p);
    }
  } else {
    console.log(`datasets not found at ${datasets}: using generated text`);
    const w =
      'the of and to in is was for on that with as by at from his her which were are this be have an it not or their had'.split(
        ' ',
      );
    for (let i = 0; i < 5000; i++)
      texts.push(
        Array.from({ length: 150 }, (_, j) => w[(i * 31 + j * 17 + ((j * j) % 7)) % w.length]).join(' ') + '.',
      );
  }
  return texts;
}

/**
 * Writes about `mb` megabytes of JSONL documents `{id, text}` made from `texts` to `file`; resolves with the number of
 * documents. The texts are used in turn (9,413 of them with the datasets: each about 17 times in 100 MB), each time
 * with a numbered last line, which c4 removes as a short line, so later copies become exact duplicates for
 * exact-dedup, as repeated pages of a web crawl do; every 20th document is the previous one's text without that line.
 */
export async function writeBenchCorpus(file, mb, texts) {
  const out = createWriteStream(file);
  let bytes = 0;
  let documents = 0;
  for (let i = 0; bytes < mb * 1e6; i++, documents++) {
    const text = i % 20 === 19 ? texts[(i - 1) % texts.length] : `${texts[i % texts.length]}\n(${i})`;
    const line = `${JSON.stringify({ id: i, text })}\n`;
    if (!out.write(line)) await new Promise((r) => out.once('drain', r));
    bytes += Buffer.byteLength(line);
  }
  await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
  return documents;
}
