import { coreLower, isHan, isKana } from '../text/chars.js';
import { scanWords, WordCache, WordNumbers, type WordScan } from '../text/words.js';
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

const SCRIPTS: readonly Script[] = ['latin', 'cyrillic', 'greek', 'arabic', 'hebrew', 'hangul', 'devanagari', 'thai', 'other'];
const HAN = -1;
const KANA = -2;
const NONE = -3;
/** Per distinct word: HAN or KANA (a CJK character), NONE (no script), else the index of its script in SCRIPTS. */
const wordClass = new WordNumbers((w) => {
  const cp = w.codePointAt(0)!;
  if (w.length <= 2 && isHan(cp)) return HAN;
  if (w.length <= 2 && isKana(cp)) return KANA;
  const script = scriptOf(w);
  return script ? SCRIPTS.indexOf(script) : NONE;
});
/** Per distinct word: the Latin language whose function word it is ('' for none). */
const stopLanguage = new WordCache((w) => STOP_INDEX.get(coreLower(w)) ?? '');

function latinLanguage(ids: Int32Array, share: number): LanguageGuess {
  const hits: Record<string, number> = {};
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    if (wordClass.get(ids[i]) !== 0) continue;
    const lang = stopLanguage.get(ids[i]);
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
 * the words with, for Latin script, how clear and how plentiful the function-word evidence is. `scanOfText`, when
 * given, must be `scanWords(text)` of the current word-table generation (it saves scanning again).
 */
export function detectLanguage(text: string, options: DetectOptions = {}, scanOfText?: WordScan): LanguageGuess {
  const sample = text.length > (options.sampleChars ?? 20000) ? text.slice(0, options.sampleChars ?? 20000) : text;
  const code = codeScore(sample);
  if (code >= (options.codeThreshold ?? 0.5)) return { lang: 'code', score: code };
  const ids = (scanOfText && sample === text ? scanOfText : scanWords(sample)).ids;
  let han = 0;
  let kana = 0;
  const perScript = new Int32Array(SCRIPTS.length);
  for (let i = 0; i < ids.length; i++) {
    const c = wordClass.get(ids[i]);
    if (c === HAN) han++;
    else if (c === KANA) kana++;
    else if (c >= 0) perScript[c]++;
  }
  let units = han + kana;
  for (const n of perScript) units += n;
  if (units === 0) return { lang: 'other', score: 0 };
  let bestScript: Script | 'cjk' = 'cjk';
  let bestCount = han + kana;
  // Scripts in name order (ties go to the first), as found in the text.
  const order = SCRIPTS.map((s, i) => i).filter((i) => perScript[i] > 0).sort((a, b) => (SCRIPTS[a] < SCRIPTS[b] ? -1 : 1));
  for (const i of order) {
    if (perScript[i] > bestCount) {
      bestScript = SCRIPTS[i];
      bestCount = perScript[i];
    }
  }
  const share = bestCount / units;
  if (bestScript === 'cjk') return { lang: kana > 0.2 * (han + kana) ? 'ja' : 'zh', score: share };
  if (bestScript === 'latin') return latinLanguage(ids, share);
  return { lang: SCRIPT_LANG[bestScript], score: share };
}
