import { readFileSync } from 'node:fs';
import { ConfigError, num, obj, record } from '@yuan/core';
import { PatternMatcher } from '../text/aho.js';
import { isAlnum } from '../text/chars.js';
import { defineFilter } from './define.js';

/** Options of `badwords`: user-supplied word lists per language (`*` applies to every language). */
export interface BadWordsOptions {
  /** Language → list of words or phrases. Default none. */
  words: Record<string, string[]>;
  /** Language → path of a UTF-8 file with one word or phrase per line (`#` starts a comment). Default none. */
  files: Record<string, string>;
  /** Drop a document with more than this many matches. Default 0 (any match drops). */
  maxMatches: number;
}

const WORDLESS = new Set(['zh', 'ja', 'th']);

function loadList(file: string, path: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `invalid config: ${path} = ${JSON.stringify(file)}; cannot read the word list (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/**
 * Drops documents containing words from the list of their language (and `*`). Matching is case-insensitive; for
 * languages written with spaces a match must start and end at word boundaries, for zh/ja/th any substring matches.
 */
export const badwordsFilter = defineFilter<BadWordsOptions>({
  name: 'badwords',
  description: 'drops documents containing words from user-supplied per-language lists',
  defaults: { words: {}, files: {}, maxMatches: 0 },
  schema: {
    expected: 'badwords options',
    parse(value, path) {
      const o = obj({ words: record(), files: record(), maxMatches: num({ int: true, min: 0 }) }).parse(value, path);
      const words: Record<string, string[]> = {};
      for (const [lang, list] of Object.entries(o.words)) {
        if (!Array.isArray(list) || list.some((w) => typeof w !== 'string')) {
          throw new ConfigError(
            `invalid config: ${path}.words.${lang} = ${JSON.stringify(list)?.slice(0, 60)}; expected an array of strings`,
          );
        }
        words[lang] = list as string[];
      }
      const files: Record<string, string> = {};
      for (const [lang, file] of Object.entries(o.files)) {
        if (typeof file !== 'string')
          throw new ConfigError(
            `invalid config: ${path}.files.${lang} = ${JSON.stringify(file)}; expected a file path`,
          );
        files[lang] = file;
      }
      return { words, files, maxMatches: o.maxMatches };
    },
  },
  create(o) {
    const lists = new Map<string, string[]>();
    for (const [lang, list] of Object.entries(o.words)) lists.set(lang, [...(lists.get(lang) ?? []), ...list]);
    for (const [lang, file] of Object.entries(o.files))
      lists.set(lang, [...(lists.get(lang) ?? []), ...loadList(file, `badwords.options.files.${lang}`)]);
    const matchers = new Map<string, PatternMatcher>();
    for (const [lang, list] of lists)
      matchers.set(lang, new PatternMatcher([...new Set(list.map((w) => w.toLowerCase()).filter((w) => w !== ''))]));
    return {
      apply(doc) {
        const lang = doc.lang ?? '*';
        const found: string[] = [];
        const lower = doc.text.toLowerCase();
        for (const key of lang === '*' ? ['*'] : [lang, '*']) {
          const m = matchers.get(key);
          if (!m) continue;
          const bounded = !WORDLESS.has(lang) && !(lang === '*' && /[\u3040-\u30ff\u4e00-\u9fff]/.test(lower));
          m.scan(lower, (p, start, end) => {
            if (bounded && ((start > 0 && isAlnum(lower[start - 1])) || (end < lower.length && isAlnum(lower[end]))))
              return;
            found.push(m.patterns[p]);
            return found.length <= o.maxMatches;
          });
          if (found.length > o.maxMatches) {
            return { keep: false, reason: `badwords:${key}`, detail: [...new Set(found)].slice(0, 5).join(', ') };
          }
        }
        return { keep: true };
      },
    };
  },
});
