import { coreLower, isHan, isKana } from '../text/chars.js';
import { splitWords } from '../text/analysis.js';
import { codeScore } from './code.js';
import { LATIN_STOPWORDS } from './stopwords.js';

/** A language label with a confidence in [0, 1]. */
export interface LanguageGuess {
  lang: string;
  score: number;
}

/** Options of the detector: the code-score threshold and how many characters are looked at. */
export interface DetectOptions {
  /** A text whose code score (share of code-like lines) reaches this is labelled `code`. Default 0.5. */
  codeThreshold?: number;
  /** Only the first this many characters are examined. Default 20000. */
  sampleChars?: number;
}

type Script = 'latin' | 'cyrillic' | 'greek' | 'arabic' | 'hebrew' | 'hangul' | 'devanagari' | 'thai' | 'other';
const SCRIPT_LANG: Record<Script, string> = {
  latin: 'other', cyrillic: 'ru', greek: 'el', arabic: 'ar', hebrew: 'he', hangul: 'ko', devanagari: 'hi', thai: 'th', other: 'other',
};

function scriptOf(word: string): Script | undefined {
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7)) return 'latin';
    if (c < 0x370) continue;
    if (c >= 0x400 && c <= 0x52f) return 'cyrillic';
    if (c >= 0x370 && c <= 0x3ff) return 'greek';
    if (c >= 0x600 && c <= 0x6ff) return 'arabic';
    if (c >= 0x590 && c <= 0x5ff) return 'hebrew';
    if ((c >= 0xac00 && c <= 0xd7af) || (c >= 0x1100 && c <= 0x11ff)) return 'hangul';
    if (c >= 0x900 && c <= 0x97f) return 'devanagari';
    if (c >= 0xe00 && c <= 0xe7f) return 'thai';
    if (/\p{L}/u.test(word[i])) return 'other';
  }
  return undefined;
}

const STOP_INDEX = new Map<string, string>();
for (const [lang, words] of Object.entries(LATIN_STOPWORDS)) for (const w of words) STOP_INDEX.set(w, lang);

function latinLanguage(words: string[], share: number): LanguageGuess {
  const hits: Record<string, number> = {};
  let total = 0;
  for (const w of words) {
    const lang = STOP_INDEX.get(coreLower(w));
    if (lang) hits[lang] = (hits[lang] ?? 0) + 1;
    total++;
  }
  const ranked = Object.entries(hits).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (ranked.length === 0 || total === 0) return { lang: 'other', score: share };
  const best = ranked[0][1] / total;
  const second = ranked.length > 1 ? ranked[1][1] / total : 0;
  // Purity: how clearly the best language's function words beat the runner-up's; evidence: whether there are enough of them.
  const purity = best / (best + second);
  const evidence = Math.min(1, best / 0.15);
  return { lang: ranked[0][0], score: share * purity * evidence };
}

/**
 * Guesses the language of a text: `code` when most lines look like source code; otherwise the dominant script
 * (Han → `zh`, kana → `ja`, Hangul → `ko`, ...), and for Latin script the language whose function words are most
 * frequent (`en`, `fr`, `de`, `es`, `it`, `pt`, `nl`, or `other`). The score combines the dominant script's share of
 * the words with, for Latin script, how clear and how plentiful the function-word evidence is. `wordsOfText`, when
 * given, must be `splitWords(text).words` (it saves splitting again).
 */
export function detectLanguage(text: string, options: DetectOptions = {}, wordsOfText?: string[]): LanguageGuess {
  const sample = text.length > (options.sampleChars ?? 20000) ? text.slice(0, options.sampleChars ?? 20000) : text;
  const code = codeScore(sample);
  if (code >= (options.codeThreshold ?? 0.5)) return { lang: 'code', score: code };
  const words = wordsOfText && sample === text ? wordsOfText : splitWords(sample).words;
  let han = 0;
  let kana = 0;
  const byScript = new Map<Script, string[]>();
  for (const w of words) {
    const cp = w.codePointAt(0)!;
    if (w.length <= 2 && isHan(cp)) han++;
    else if (w.length <= 2 && isKana(cp)) kana++;
    else {
      const script = scriptOf(w);
      if (!script) continue;
      let list = byScript.get(script);
      if (!list) byScript.set(script, (list = []));
      list.push(w);
    }
  }
  let units = han + kana;
  for (const list of byScript.values()) units += list.length;
  if (units === 0) return { lang: 'other', score: 0 };
  let bestScript: Script | 'cjk' = 'cjk';
  let bestCount = han + kana;
  for (const [script, list] of [...byScript.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (list.length > bestCount) {
      bestScript = script;
      bestCount = list.length;
    }
  }
  const share = bestCount / units;
  if (bestScript === 'cjk') return { lang: kana > 0.2 * (han + kana) ? 'ja' : 'zh', score: share };
  if (bestScript === 'latin') return latinLanguage(byScript.get('latin')!, share);
  return { lang: SCRIPT_LANG[bestScript], score: share };
}
