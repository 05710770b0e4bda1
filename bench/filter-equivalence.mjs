// Equivalence check of two builds of @yuan/data-filter: runs the `yuan-zh-en` preset of OLD_DIST and of this checkout's
// packages/data-filter/dist on the bench corpus (bench/filter.mjs) and on a ~15 MB mixed corpus (WikiText-2, GSM8K,
// AGIEval incl. gaokao passages, HumanEval, tinyshakespeare, yuan-eval, and generated junk and edge cases that hit
// every rule: malformed lines, invalid UTF-8, CRLF, control and zero-width characters, full-width and compatibility
// forms, lone surrogates, repeats, bullets, ellipses, JavaScript and policy lines, other languages, code), with 1 and 2
// threads and with `annotate`, and compares output, rejects and report (without its timings) byte for byte.
// Run: `node bench/filter-equivalence.mjs OLD_DIST [bench MB]` after building packages/data-filter. OLD_DIST is a copy
// of packages/data-filter/dist from the build to compare against, in a folder whose node_modules resolves @yuan/core
// (e.g. `cp -r packages/data-filter/dist /tmp/old/dist && ln -s $PWD/packages/data-filter/node_modules /tmp/old/`).
// Exits 1 when anything differs. Needs ../shared/datasets.
// --smoke (in place of OLD_DIST): this build against itself on a 0.3 MB mixed corpus only, to check that the script
// runs and that the filter is deterministic (the test suite does this).
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { benchTexts, writeBenchCorpus } from './filter-corpus.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const D = path.resolve(root, '..', 'shared', 'datasets');
const smoke = process.argv.includes('--smoke');
const args = process.argv.slice(2).filter((a) => a !== '--smoke');
const newDist = path.join(root, 'packages', 'data-filter', 'dist');
if (smoke) args.unshift(newDist);
const oldDist = path.resolve(args[0] ?? '');
const benchMB = Number(args[1] ?? 10);
const mixedMB = smoke ? 0.3 : 15;
if (!args[0]) {
  console.error('usage: node bench/filter-equivalence.mjs OLD_DIST [bench MB] | --smoke');
  process.exit(2);
}

/** The mixed corpus (deterministic), about `mb` megabytes. */
function mixedCorpus(file, mb) {
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const texts = [];
  const wt =
    readFileSync(path.join(D, 'wikitext-2', 'test.txt'), 'utf8') +
    readFileSync(path.join(D, 'wikitext-2', 'valid.txt'), 'utf8');
  // wikitext: single paragraphs and whole articles (split on ' = ' headings)
  for (const l of wt.split('\n')) if (l.trim().length > 20) texts.push(l.trim());
  for (const art of wt.split(/\n = [^=]/)) if (art.length > 100) texts.push(art);
  for (const f of ['train.jsonl', 'test.jsonl'])
    for (const l of readFileSync(path.join(D, 'gsm8k', f), 'utf8')
      .trim()
      .split('\n')) {
      const g = JSON.parse(l);
      texts.push(`${g.question}\n${g.answer}`);
    }
  for (const f of readdirSync(path.join(D, 'agieval')).filter((f) => f.endsWith('.jsonl')))
    for (const l of readFileSync(path.join(D, 'agieval', f), 'utf8')
      .trim()
      .split('\n')) {
      const g = JSON.parse(l);
      if (g.passage) texts.push(g.passage);
      if (g.question) texts.push(g.question + '\n' + (g.options ?? []).join('\n'));
    }
  for (const l of gunzipSync(readFileSync(path.join(D, 'humaneval', 'HumanEval.jsonl.gz')))
    .toString()
    .trim()
    .split('\n')) {
    const g = JSON.parse(l);
    texts.push(g.prompt + g.canonical_solution);
    texts.push(`# Copyright 2020 Foo\n# Licensed under the MIT license\n\n${g.prompt}${g.canonical_solution}`);
    texts.push(`// auto-generated, do not edit\n${g.prompt}`);
  }
  const shakes = readFileSync(path.join(D, 'tinyshakespeare', 'input.txt'), 'utf8').split('\n\n');
  for (let i = 0; i < shakes.length; i += 3) texts.push(shakes.slice(i, i + 3).join('\n\n'));
  for (const f of ['gsm8k_Cn.txt', 'mathqa.txt', 'mathcloze.txt'])
    for (const l of readFileSync(path.join(D, 'yuan-eval', f), 'utf8').split('\n'))
      if (l.length > 10) texts.push(l.replaceAll('<n>', '\n'));
  const words = texts.slice(0, 2000).join(' ').split(/\s+/);
  const junk = [
    () => Array.from({ length: 50 }, () => 'buy now cheap pills').join(' '),
    () => Array.from({ length: 40 }, () => pick(words)).join('\n'),
    () => Array.from({ length: 30 }, () => '• ' + pick(words) + ' ' + pick(words)).join('\n'),
    () => Array.from({ length: 20 }, () => pick(words) + ' ' + pick(words) + '...').join('\n'),
    () => 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. ' + pick(texts),
    () =>
      pick(texts) +
      '\nPlease enable JavaScript to view this page.\nThis site uses cookies. Read our Privacy Policy.\n' +
      pick(texts),
    () => pick(texts).replace(/ /g, '  ').replace(/\n/g, '\r\n') + '\t \n\n\n\n\n' + pick(texts) + '   ',
    () =>
      '\u200b\ufeff' +
      pick(texts) +
      '\u0001\u00ad ｆｕｌｌ　ｗｉｄｔｈ　ＡＢＣ１２３，！？' +
      '\u3000\u00a0' +
      pick(texts),
    () => 'ﬁ ﬂ Ⅻ ㎏ ① é é ' + pick(texts) + ' 😀🎉 \ud800 lone ' + pick(texts),
    () => Array.from({ length: 200 }, () => '的了是在和有').join('') + '。',
    () =>
      pick(texts) +
      '\n\n' +
      pick(texts) +
      '\n\n' +
      pick(texts) +
      '\n\n' +
      pick(texts).slice(0, 50) +
      '\n\n' +
      pick(texts).slice(0, 50),
    () => 'x'.repeat(1500) + ' ' + pick(texts),
    () => '### ' + Array.from({ length: 30 }, () => '#' + pick(words)).join(' ') + ' … …',
    () =>
      'Привет мир, это тест. ' +
      Array.from({ length: 80 }, () => pick(['и', 'в', 'не', 'на', 'я', 'что', 'тот', 'быть'])).join(' '),
    () => 'Le chat est sur la table et le chien est dans le jardin avec les enfants qui jouent. '.repeat(5),
    () => 'こんにちは、世界。これはテストです。' + pick(texts),
    () => pick(texts).toUpperCase(),
    () => pick(texts).slice(0, Math.floor(rnd() * 60)),
    () => '{"a": 1}\nfunction f(x) {\n  return x + 1;\n}\nconst y = f(2);\n' + pick(texts),
    () => pick(texts).split('').reverse().join(''),
    () => '  indented line one\n\tTabbed line\n' + pick(texts) + '\n- bullet one\n- bullet two\n* star',
    () => pick(texts) + ' K\u212Aelvin İstanbul ΣΑΣ ß ẞ',
    () => '隐私政策\n' + pick(texts) + '\n本网站使用cookie以提升体验。\n' + pick(texts),
    () => pick(texts) + '\u2028' + pick(texts) + '\u0085' + pick(texts),
  ];
  const lines = [];
  let bytes = 0;
  for (let i = 0; bytes < mb * 1e6; i++) {
    const r = rnd();
    let line;
    if (r < 0.004)
      line = pick([
        'not json',
        '[1,2,3]',
        'null',
        '{"id": 5}',
        '{"text": 42}',
        '{"text": null}',
        '',
        '   ',
        '{"text": "ok", "id": {"x":1}}',
        '{"text":"spaced json with extra","id":"a b", "meta": {"k": [1, 2]} }',
      ]);
    else {
      let text;
      if (r < 0.25) text = junk[Math.floor(rnd() * junk.length)]();
      else if (r < 0.33 && lines.length)
        text = JSON.parse(pick(lines.filter((l) => l.startsWith('{"id"')).slice(-50)) ?? '{"text":"x"}').text ?? 'x';
      else if (r < 0.38) {
        const t = pick(texts);
        const k = Math.floor(rnd() * t.length);
        text = t.slice(0, k) + pick(words) + t.slice(k);
      } else text = pick(texts) + (rnd() < 0.5 ? `\n(${i})` : '');
      const rec =
        rnd() < 0.1 ? { text, id: `doc-${i}`, meta: { src: 'x', n: i } } : rnd() < 0.05 ? { text } : { id: i, text };
      line = JSON.stringify(rec);
      if (rnd() < 0.01) line = line.replace('"text":', '"text" :  ');
    }
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
  }
  writeFileSync(file, lines.join('\n') + '\n');
  appendFileSync(
    file,
    Buffer.concat([Buffer.from('{"id":"bad","text":"abc '), Buffer.from([0xff, 0xfe]), Buffer.from(' def"}\n')]),
  );
  appendFileSync(
    file,
    '{"id":"crlf","text":"This is a line with a CRLF ending that should parse fine and be long enough to pass."}\r\n',
  );
}

const variants = [
  { name: '1 thread', workers: 1 },
  { name: '2 threads', workers: 2 },
  { name: '2 threads, annotate', workers: 2, configObject: { annotate: true, examples: 5 } },
];
/** Report fields that differ between runs or thread counts without a difference in what was filtered (left out). */
const TIMINGS = new Set(['seconds', 'documentsPerSecond', 'megabytesPerSecond', 'threads']);
const dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-equivalence-'));
let bad = 0;
try {
  const inputs = [path.join(dir, 'mixed.jsonl')];
  mixedCorpus(inputs[0], mixedMB);
  if (!smoke) {
    inputs.unshift(path.join(dir, 'bench.jsonl'));
    await writeBenchCorpus(inputs[0], benchMB, benchTexts(D));
  }
  const builds = {
    old: await import(path.join(oldDist, 'index.js')),
    new: await import(path.join(newDist, 'index.js')),
  };
  for (const input of inputs) {
    for (const v of variants) {
      const got = {};
      for (const tag of ['old', 'new']) {
        const out = path.join(dir, tag);
        rmSync(out, { recursive: true, force: true });
        mkdirSync(out);
        const t = performance.now();
        await builds[tag].runFilter({
          inputs: [input],
          output: `${out}/out.jsonl`,
          rejects: `${out}/rejects.jsonl`,
          report: `${out}/report.json`,
          preset: 'yuan-zh-en',
          workers: v.workers,
          configObject: v.configObject,
        });
        const report = JSON.stringify(
          JSON.parse(readFileSync(`${out}/report.json`, 'utf8').replaceAll(out, 'OUT')),
          (k, x) => (TIMINGS.has(k) ? undefined : x),
        );
        got[tag] = {
          output: readFileSync(`${out}/out.jsonl`),
          rejects: readFileSync(`${out}/rejects.jsonl`),
          report: Buffer.from(report),
          seconds: (performance.now() - t) / 1000,
        };
      }
      const differ = ['output', 'rejects', 'report'].filter((k) => !got.old[k].equals(got.new[k]));
      if (differ.length) bad++;
      console.log(
        `${path.basename(input)} (${(readFileSync(input).length / 1e6).toFixed(1)} MB), ${v.name}: ${differ.length ? `DIFFERENT ${differ.join(', ')}` : 'identical output, rejects and report'} (old ${got.old.seconds.toFixed(2)} s, new ${got.new.seconds.toFixed(2)} s)`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(bad ? 1 : 0);
