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
  for (let i = 0; i + 40 <= lines.length && out.length < limit; i += 40)
    out.push({ id: `shak-${i}`, src: 'shak', text: lines.slice(i, i + 40).join('\n') });
  return out;
}

/** GSM8K test problems with their worked answers. */
export function gsm8k(limit: number): Doc[] {
  return readFileSync(path.join(datasets, 'gsm8k', 'test.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, limit)
    .map((l) => JSON.parse(l) as { question: string; answer: string })
    .map((g, i) => ({ id: `gsm-${i}`, src: 'gsm', text: `${g.question}\n${g.answer}` }));
}

/** Distinct AGIEval gaokao passages of at least 100 characters from the given subsets. */
export function gaokaoPassages(subsets: string[]): Doc[] {
  const seen = new Set<string>();
  const out: Doc[] = [];
  for (const s of subsets) {
    for (const l of readFileSync(path.join(datasets, 'agieval', `gaokao-${s}.jsonl`), 'utf8')
      .trim()
      .split('\n')) {
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
    for (const l of readFileSync(path.join(datasets, 'agieval', `gaokao-${s}.jsonl`), 'utf8')
      .trim()
      .split('\n')) {
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
  return text
    .trim()
    .split('\n')
    .slice(0, limit)
    .map((l) => JSON.parse(l) as { task_id: string; prompt: string; canonical_solution: string })
    .map((p) => ({ id: p.task_id, src: 'humaneval', text: p.prompt + p.canonical_solution }));
}

/** Lists the gaokao subsets present. */
export function gaokaoSubsets(): string[] {
  return readdirSync(path.join(datasets, 'agieval'))
    .filter((f) => f.startsWith('gaokao-'))
    .map((f) => f.slice(7, -6));
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
      id: `junk-boiler-${i}`,
      src: 'junk-boilerplate',
      expect: /^c4:(no-lines-left|too-few-sentences)$|^gopher-quality:too-few-words$/,
      text: [
        'Home | About us | Contact | Blog',
        'This website uses cookies to improve your experience. By continuing you agree to our Cookie Policy.',
        'Please enable JavaScript in your browser to view this page.',
        'Privacy Policy | Terms of Use',
        `Copyright ${2000 + i} Example Inc. All rights reserved.`,
        'Accept all cookies',
        'Sign in',
        'Subscribe to our newsletter for the latest updates and offers from us and our partners.',
      ].join('\n'),
    });
    const line =
      pick()
        .split('\n')
        .find((l) => l.split(' ').length > 8) ?? pick().slice(0, 120);
    out.push({
      id: `junk-repeat-${i}`,
      src: 'junk-repeat',
      expect: /^gopher-repetition:|^fineweb:dup-line-chars$/,
      text: `${pick().slice(0, 300)}\n${Array(15 + i)
        .fill(line)
        .join('\n')}`,
    });
    let soup = '';
    for (let j = 0; j < 600; j++) soup += rand() < 0.15 ? ' ' : symbols[Math.floor(rand() * symbols.length)];
    out.push({ id: `junk-soup-${i}`, src: 'junk-soup', expect: /^langid:language:other$/, text: soup });
    const words = pick().split(/\s+/).slice(0, 200);
    for (let j = 0; j < words.length; j += 3) words[j] = `### ${words[j]} ...`;
    out.push({
      id: `junk-symbols-${i}`,
      src: 'junk-symbols',
      expect: /^gopher-quality:symbol-ratio$/,
      text: words.join(' '),
    });
    const lorem =
      'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.';
    out.push({
      id: `junk-lorem-${i}`,
      src: 'junk-lorem',
      expect: /^langid:(low-score:\w+|language:\w+)$/,
      text: Array(4)
        .fill(lorem)
        .join(' ')
        .replace(/Ut enim/, `Ut enim ${i}`),
    });
    out.push({
      id: `junk-lorem-prose-${i}`,
      src: 'junk-lorem-prose',
      expect: /^c4:lorem-ipsum$/,
      text: `${pick()}\n${lorem}`,
    });
  }
  return out;
}

/** Undoes WikiText's tokenisation (` @-@ `, ` , `, ` 's`, spaced quotes and brackets); `<unk>` stays. */
export function detokenize(s: string): string {
  return s
    .replace(/ @(.)@ /g, '$1')
    .replace(/ ([.,;:!?)\]}%]|n't|'s|'re|'ve|'d|'ll|'m)(?=\s|$)/g, '$1')
    .replace(/([([{$]) /g, '$1')
    .replace(/" ([^"]*?) "/g, '"$1"')
    .replace(/ +/g, ' ')
    .trim();
}

/** Well-formed English Wikipedia paragraphs: WikiText-2 valid + test lines of at least `minWords` words, detokenised. */
export function wikiParagraphs(minWords = 120): Doc[] {
  const out: Doc[] = [];
  for (const f of ['valid.txt', 'test.txt']) {
    for (const l of readFileSync(path.join(datasets, 'wikitext-2', f), 'utf8').split('\n')) {
      const t = l.trim();
      if (!t || t.startsWith('=') || t.split(/\s+/).length < minWords) continue;
      out.push({ id: `wp-${out.length}`, src: 'wiki-paragraph', text: detokenize(t) });
    }
  }
  return out;
}

const CYRILLIC: Record<string, string> = {
  a: 'а',
  b: 'б',
  c: 'ц',
  d: 'д',
  e: 'е',
  f: 'ф',
  g: 'г',
  h: 'х',
  i: 'и',
  j: 'й',
  k: 'к',
  l: 'л',
  m: 'м',
  n: 'н',
  o: 'о',
  p: 'п',
  q: 'к',
  r: 'р',
  s: 'с',
  t: 'т',
  u: 'у',
  v: 'в',
  w: 'ш',
  x: 'кс',
  y: 'ы',
  z: 'з',
};
const GREEK: Record<string, string> = {
  a: 'α',
  b: 'β',
  c: 'κ',
  d: 'δ',
  e: 'ε',
  f: 'φ',
  g: 'γ',
  h: 'η',
  i: 'ι',
  j: 'ξ',
  k: 'κ',
  l: 'λ',
  m: 'μ',
  n: 'ν',
  o: 'ο',
  p: 'π',
  q: 'θ',
  r: 'ρ',
  s: 'σ',
  t: 'τ',
  u: 'υ',
  v: 'β',
  w: 'ω',
  x: 'χ',
  y: 'ψ',
  z: 'ζ',
};
const FUNCTION_WORDS: Record<string, Record<string, string>> = {
  fr: {
    the: 'le',
    of: 'de',
    and: 'et',
    to: 'à',
    in: 'dans',
    a: 'un',
    is: 'est',
    was: 'était',
    that: 'que',
    for: 'pour',
    on: 'sur',
    with: 'avec',
    as: 'comme',
    by: 'par',
    his: 'son',
    he: 'il',
    it: 'il',
    at: 'à',
    from: 'de',
    which: 'qui',
    were: 'étaient',
    an: 'une',
    are: 'sont',
    not: 'pas',
    this: 'ce',
    had: 'avait',
    their: 'leur',
    they: 'ils',
    be: 'être',
  },
  de: {
    the: 'der',
    of: 'von',
    and: 'und',
    to: 'zu',
    in: 'im',
    a: 'ein',
    is: 'ist',
    was: 'war',
    that: 'dass',
    for: 'für',
    on: 'auf',
    with: 'mit',
    as: 'als',
    by: 'durch',
    his: 'sein',
    he: 'er',
    it: 'es',
    at: 'bei',
    from: 'aus',
    which: 'die',
    were: 'waren',
    an: 'eine',
    are: 'sind',
    not: 'nicht',
    this: 'dies',
    had: 'hatte',
    their: 'ihre',
    they: 'sie',
    be: 'sein',
  },
  es: {
    the: 'el',
    of: 'de',
    and: 'y',
    to: 'a',
    in: 'en',
    a: 'un',
    is: 'es',
    was: 'fue',
    that: 'que',
    for: 'para',
    on: 'sobre',
    with: 'con',
    as: 'como',
    by: 'por',
    his: 'su',
    he: 'él',
    it: 'lo',
    at: 'en',
    from: 'desde',
    which: 'cual',
    were: 'eran',
    an: 'una',
    are: 'son',
    not: 'no',
    this: 'este',
    had: 'había',
    their: 'sus',
    they: 'ellos',
    be: 'ser',
  },
};

/**
 * Text in other languages, generated from real prose because ../shared/datasets holds none: Russian-script and
 * Greek-script transliterations, and French/German/Spanish with the English function words swapped.
 */
export function otherLanguages(prose: Doc[]): (Doc & { lang: string })[] {
  const out: (Doc & { lang: string })[] = [];
  prose.forEach((d, i) => {
    const kind = ['ru', 'el', 'fr', 'de', 'es'][i % 5];
    let text: string;
    if (kind === 'ru' || kind === 'el') {
      const map = kind === 'ru' ? CYRILLIC : GREEK;
      text = d.text.replace(/[a-z]/gi, (c) => {
        const m = map[c.toLowerCase()];
        return c === c.toLowerCase() ? m : m.toUpperCase();
      });
    } else {
      const words = FUNCTION_WORDS[kind];
      text = d.text.replace(/[A-Za-z]+/g, (w) => {
        const m = words[w.toLowerCase()];
        if (!m) return w;
        return w[0] === w[0].toUpperCase() ? m[0].toUpperCase() + m.slice(1) : m;
      });
    }
    out.push({ id: `other-${kind}-${i}`, src: `other-${kind}`, lang: kind, text });
  });
  return out;
}

/** Web boilerplate pages in English and Chinese: navigation, cookie and legal notices, link lists, ads. */
export function boilerplate(n: number, rand: () => number): Doc[] {
  const en = [
    'Home',
    'About us',
    'Contact',
    'Blog',
    'Careers',
    'Press',
    'Sign in',
    'Register',
    'Cart (0)',
    'Search',
    'FAQ',
    'Help center',
    'Shipping & returns',
    'Gift cards',
    'Store locator',
  ];
  const zh = [
    '首页',
    '关于我们',
    '联系我们',
    '新闻中心',
    '产品中心',
    '加入我们',
    '登录',
    '注册',
    '购物车',
    '网站地图',
    '帮助中心',
    '在线客服',
  ];
  const out: Doc[] = [];
  for (let i = 0; i < n; i++) {
    const pick = (xs: string[], k: number) => Array.from({ length: k }, () => xs[Math.floor(rand() * xs.length)]);
    const lines =
      i % 2 === 0
        ? [
            pick(en, 6).join(' | '),
            ...pick(en, 12),
            'This site uses cookies to give you the best experience. By continuing to browse you agree to our use of cookies.',
            `© ${2001 + i} Example Media Group. All rights reserved. Privacy Policy | Terms of Use`,
            'Follow us on Facebook Twitter Instagram',
            'Subscribe',
            'Back to top',
          ]
        : [
            pick(zh, 6).join(' | '),
            ...pick(zh, 12),
            '本网站使用cookie以提升您的浏览体验，继续浏览即表示您同意我们的隐私政策。',
            `版权所有 © ${2001 + i} 某某科技有限公司 保留所有权利 隐私政策 | 使用条款`,
            `京ICP备${10000000 + i}号`,
            '返回顶部',
          ];
    out.push({ id: `boiler-${i}`, src: 'boilerplate', text: lines.join('\n') });
  }
  return out;
}
