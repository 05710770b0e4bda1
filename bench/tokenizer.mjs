// Throughput of the YUAN 2.0 SentencePiece tokenizer on tinyshakespeare: encode with a cold and a warm memo, and
// decode, against the floor of UTF-8 encoding the same text (TextEncoder) measured in this run.
// Run: `node bench/tokenizer.mjs` after `pnpm build`; needs ../shared (fixtures/yuan2-tokenizer, datasets/tinyshakespeare).
// --smoke: the first 20 kB of the text, to check that the benchmark runs (the test suite does this).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSentencePiece } from '@yuan/tokenizer';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shared = path.resolve(root, '..', 'shared');
const model = path.join(shared, 'fixtures', 'yuan2-tokenizer', 'tokenizer.model');
const input = path.join(shared, 'datasets', 'tinyshakespeare', 'input.txt');
for (const f of [model, input]) {
  if (!existsSync(f)) {
    console.error(`${f} not found (the shared folder sits beside the repository)`);
    process.exit(1);
  }
}
const full = readFileSync(input, 'utf8');
// --smoke: cut at a line end so that the text stays valid UTF-8 and decodes back to itself
const text = process.argv.includes('--smoke') ? full.slice(0, full.indexOf('\n', 20_000) + 1) : full;
const mb = Buffer.byteLength(text) / 1e6;
const time = (fn) => {
  const t0 = performance.now();
  const r = fn();
  return { r, s: (performance.now() - t0) / 1000 };
};
const floor = Math.min(...[0, 1, 2].map(() => time(() => new TextEncoder().encode(text)).s));
const tok = await loadSentencePiece(model);
const cold = time(() => tok.encode(text));
const warm = time(() => tok.encode(text));
const dec = time(() => tok.decode(cold.r));
if (dec.r !== text) throw new Error('decode(encode(text)) differs from the text');
console.log(`tinyshakespeare${text === full ? '' : ' (start)'} ${mb.toFixed(2)} MB -> ${cold.r.length} tokens`);
for (const [name, s] of [
  ['TextEncoder (floor)', floor],
  ['encode, cold memo', cold.s],
  ['encode, warm memo', warm.s],
  ['decode', dec.s],
]) {
  console.log(
    `${name.padEnd(20)} ${(mb / s).toFixed(1).padStart(8)} MB/s  ${(s / floor).toFixed(1).padStart(7)}x the floor's time`,
  );
}
