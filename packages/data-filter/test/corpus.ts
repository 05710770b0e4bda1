import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Root of the shared data sets (../shared/datasets beside the repository). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const datasets = path.resolve(repoRoot, '..', 'shared', 'datasets');
export const haveDatasets = existsSync(datasets);
export const skipReason = `shared datasets not found at ${datasets}`;

export interface Doc {
  id: string;
  src: string;
  text: string;
}

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** WikiText-2 test articles (split at top-level headings). */
export function wikiArticles(limit: number): Doc[] {
  const lines = readFileSync(path.join(datasets, 'wikitext-2', 'test.txt'), 'utf8').split('\n');
  const out: Doc[] = [];
  let cur: string[] | undefined;
  for (const l of lines) {
    if (/^ = [^=].* = $/.test(l)) {
      if (cur) out.push({ id: `wiki-${out.length}`, src: 'wiki', text: cur.join('\n') });
      if (out.length >= limit) return out;
      cur = [l.trim()];
    } else if (cur && l.trim()) cur.push(l.trim());
  }
  return out;
}

/** Tiny Shakespeare in chunks of 40 lines. */
export function shakespeare(limit: number): Doc[] {
  const lines = readFileSync(path.join(datasets, 'tinyshakespeare', 'input.txt'), 'utf8').split('\n');
  const out: Doc[] = [];
  for (let i = 0; i + 40 <= lines.length && out.length < limit; i += 40) out.push({ id: `shak-${i}`, src: 'shak', text: lines.slice(i, i + 40).join('\n') });
  return out;
}

/** GSM8K test problems with their worked answers. */
export function gsm8k(limit: number): Doc[] {
  return readFileSync(path.join(datasets, 'gsm8k', 'test.jsonl'), 'utf8').trim().split('\n').slice(0, limit)
    .map((l, i) => JSON.parse(l) as { question: string; answer: string })
    .map((g, i) => ({ id: `gsm-${i}`, src: 'gsm', text: `${g.question}\n${g.answer}` }));
}

/** Distinct AGIEval gaokao passages of at least 100 characters from the given subsets. */
export function gaokaoPassages(subsets: string[]): Doc[] {
  const seen = new Set<string>();
  const out: Doc[] = [];
  for (const s of subsets) {
    for (const l of readFileSync(path.join(datasets, 'agieval', `gaokao-${s}.jsonl`), 'utf8').trim().split('\n')) {
      const r = JSON.parse(l) as { passage: string | null };
      const t = r.passage ?? '';
      if (t.length < 100 || seen.has(t)) continue;
      seen.add(t);
      out.push({ id: `gk-${s}-${out.length}`, src: `gk-${s}`, text: t });
    }
  }
  return out;
}

/** AGIEval gaokao questions (with their options) from the given subsets, as short Chinese texts. */
export function gaokaoQuestions(subsets: string[], limit: number): Doc[] {
  const out: Doc[] = [];
  for (const s of subsets) {
    for (const l of readFileSync(path.join(datasets, 'agieval', `gaokao-${s}.jsonl`), 'utf8').trim().split('\n')) {
      const r = JSON.parse(l) as { question: string; options: string[] | null };
      if (out.length >= limit) return out;
      out.push({ id: `gq-${s}-${out.length}`, src: `gq-${s}`, text: `${r.question}\n${(r.options ?? []).join('\n')}` });
    }
  }
  return out;
}

/** HumanEval problems (prompt + canonical solution) as Python files. */
export function humaneval(limit: number): Doc[] {
  const text = gunzipSync(readFileSync(path.join(datasets, 'humaneval', 'HumanEval.jsonl.gz'))).toString('utf8');
  return text.trim().split('\n').slice(0, limit)
    .map((l) => JSON.parse(l) as { task_id: string; prompt: string; canonical_solution: string })
    .map((p) => ({ id: p.task_id, src: 'humaneval', text: p.prompt + p.canonical_solution }));
}

/** Lists the gaokao subsets present. */
export function gaokaoSubsets(): string[] {
  return readdirSync(path.join(datasets, 'agieval')).filter((f) => f.startsWith('gaokao-')).map((f) => f.slice(7, -6));
}

const TOKEN = /\p{Script=Han}|[\p{L}\p{N}]+/gu;

/** 5-word shingles, computed independently of the package (lower-cased letter/digit runs; each Han character a token). */
export function shingles(text: string, n = 5): Set<string> {
  const t = text.toLowerCase().match(TOKEN) ?? [];
  const s = new Set<string>();
  for (let i = 0; i + n <= t.length; i++) s.add(t.slice(i, i + n).join(' '));
  return s;
}

/** Jaccard similarity of two sets. */
export function jaccard(a: Set<string>, b: Set<string>): number {
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

/** A copy of a text with `k` distinct word positions replaced by fresh made-up words. */
export function mutate(text: string, k: number, rand: () => number): string {
  const parts = text.split(' ');
  const positions = new Set<number>();
  while (positions.size < Math.min(k, parts.length)) positions.add(Math.floor(rand() * parts.length));
  for (const p of positions) parts[p] = `zq${Math.floor(rand() * 1e9).toString(36)}`;
  return parts.join(' ');
}

/** Writes documents as JSONL text. */
export function jsonl(docs: object[]): string {
  return docs.map((d) => JSON.stringify(d)).join('\n') + '\n';
}

/** A copy of a Chinese text with `k` distinct Han characters replaced by other Han characters. */
export function mutateChars(text: string, k: number, rand: () => number): string {
  const chars = [...text];
  const han = chars.map((c, i) => (/\p{Script=Han}/u.test(c) ? i : -1)).filter((i) => i >= 0);
  const positions = new Set<number>();
  while (positions.size < Math.min(k, han.length)) positions.add(han[Math.floor(rand() * han.length)]);
  for (const p of positions) chars[p] = String.fromCodePoint(0x4e00 + Math.floor(rand() * 0x5000));
  return chars.join('');
}

/** Generated junk: boilerplate, repeated lines, symbol soup, lorem ipsum (alone and inside prose); `prose` is real text. */
export function junk(prose: string[], rand: () => number): (Doc & { expect: RegExp })[] {
  const pick = () => prose[Math.floor(rand() * prose.length)];
  const out: (Doc & { expect: RegExp })[] = [];
  const symbols = '#$%^&*()_+{}[]|\\:;"<>,.?/~`@!=-';
  for (let i = 0; i < 10; i++) {
    out.push({
      id: `junk-boiler-${i}`, src: 'junk-boilerplate', expect: /^c4:(no-lines-left|too-few-sentences)$|^gopher-quality:too-few-words$/,
      text: ['Home | About us | Contact | Blog', 'This website uses cookies to improve your experience. By continuing you agree to our Cookie Policy.', 'Please enable JavaScript in your browser to view this page.', 'Privacy Policy | Terms of Use', `Copyright ${2000 + i} Example Inc. All rights reserved.`, 'Accept all cookies', 'Sign in', 'Subscribe to our newsletter for the latest updates and offers from us and our partners.'].join('\n'),
    });
    const line = pick().split('\n').find((l) => l.split(' ').length > 8) ?? pick().slice(0, 120);
    out.push({ id: `junk-repeat-${i}`, src: 'junk-repeat', expect: /^gopher-repetition:|^fineweb:dup-line-chars$/, text: `${pick().slice(0, 300)}\n${Array(15 + i).fill(line).join('\n')}` });
    let soup = '';
    for (let j = 0; j < 600; j++) soup += rand() < 0.15 ? ' ' : symbols[Math.floor(rand() * symbols.length)];
    out.push({ id: `junk-soup-${i}`, src: 'junk-soup', expect: /^langid:language:other$/, text: soup });
    const words = pick().split(/\s+/).slice(0, 200);
    for (let j = 0; j < words.length; j += 3) words[j] = `### ${words[j]} ...`;
    out.push({ id: `junk-symbols-${i}`, src: 'junk-symbols', expect: /^gopher-quality:symbol-ratio$/, text: words.join(' ') });
    const lorem = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.';
    out.push({ id: `junk-lorem-${i}`, src: 'junk-lorem', expect: /^langid:(low-score:\w+|language:\w+)$/, text: Array(4).fill(lorem).join(' ').replace(/Ut enim/, `Ut enim ${i}`) });
    out.push({ id: `junk-lorem-prose-${i}`, src: 'junk-lorem-prose', expect: /^c4:lorem-ipsum$/, text: `${pick()}\n${lorem}` });
  }
  return out;
}
