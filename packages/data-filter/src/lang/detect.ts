import { isHan, isKana } from '../text/chars.js';
import { coreLowerOfWord, scanWords, WORD_ROW, WordNumbers, type WordScan } from '../text/words.js';
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
  latin: 'other',
  cyrillic: 'ru',
  greek: 'el',
  arabic: 'ar',
  hebrew: 'he',
  hangul: 'ko',
  devanagari: 'hi',
  thai: 'th',
  other: 'other',
};

function scriptOf(word: string): Script | undefined {
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 0xc0 && c <= 0x24f && c !== 0xd7 && c !== 0xf7))
      return 'latin';
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

const SCRIPTS: readonly Script[] = [
  'latin',
  'cyrillic',
  'greek',
  'arabic',
  'hebrew',
  'hangul',
  'devanagari',
  'thai',
  'other',
];
/** Scripts in name order: ties in the count of words go to the first. */
const SCRIPTS_BY_NAME = SCRIPTS.map((_, i) => i).sort((a, b) => (SCRIPTS[a] < SCRIPTS[b] ? -1 : 1));
const HAN = -1;
const KANA = -2;
const NONE = -3;
const STOP_LANGS = [...new Set(STOP_INDEX.values())];
/**
 * Per distinct word, packed: bits 0-7 its class + 3 (HAN or KANA for a CJK character, NONE for no script, else the
 * index of its script in SCRIPTS); bits 8-15, for a Latin word, 1 + the index in STOP_LANGS of the language it is a
 * function word of (0: none).
 */
const wordFacts = new WordNumbers((w, id) => {
  const cp = w.codePointAt(0)!;
  let c: number;
  if (w.length <= 2 && isHan(cp)) c = HAN;
  else if (w.length <= 2 && isKana(cp)) c = KANA;
  else {
    const script = scriptOf(w);
    c = script ? SCRIPTS.indexOf(script) : NONE;
  }
  const stop = c === 0 ? STOP_INDEX.get(coreLowerOfWord.get(id)) : undefined;
  return (c + 3) | ((stop === undefined ? 0 : STOP_LANGS.indexOf(stop) + 1) << 8);
});

/** Per-call counters, reused (a typed array per call is a measurable share of the allocations). */
const perScriptScratch = new Int32Array(SCRIPTS.length);
const hitsByLangScratch = new Int32Array(STOP_LANGS.length);

function latinLanguage(hitsByLang: Int32Array, total: number, share: number): LanguageGuess {
  // The language with the most function-word hits (ties: the first by name) and the runner-up's count.
  let bestLang = -1;
  let bestHits = 0;
  let secondHits = 0;
  for (let l = 0; l < STOP_LANGS.length; l++) {
    const hits = hitsByLang[l];
    if (hits <= 0) continue;
    if (bestLang < 0 || hits > bestHits || (hits === bestHits && STOP_LANGS[l] < STOP_LANGS[bestLang])) {
      secondHits = Math.max(secondHits, bestHits);
      bestLang = l;
      bestHits = hits;
    } else secondHits = Math.max(secondHits, hits);
  }
  if (bestLang < 0 || total === 0) return { lang: 'other', score: share };
  const best = bestHits / total;
  const second = secondHits / total;
  // Purity: how clearly the best language's function words beat the runner-up's; evidence: whether there are enough of them.
  const purity = best / (best + second);
  const evidence = Math.min(1, best / 0.15);
  return { lang: STOP_LANGS[bestLang], score: share * purity * evidence };
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
  const perScript = perScriptScratch.fill(0);
  const hitsByLang = hitsByLangScratch.fill(0);
  const facts = wordFacts.table();
  const column = wordFacts.column;
  for (let i = 0; i < ids.length; i++) {
    const f = facts[ids[i] * WORD_ROW + column];
    const c = (f & 0xff) - 3;
    if (c === HAN) han++;
    else if (c === KANA) kana++;
    else if (c >= 0) {
      perScript[c]++;
      if (f >> 8) hitsByLang[(f >> 8) - 1]++;
    }
  }
  let units = han + kana;
  for (const n of perScript) units += n;
  if (units === 0) return { lang: 'other', score: 0 };
  let bestScript: Script | 'cjk' = 'cjk';
  let bestCount = han + kana;
  for (const i of SCRIPTS_BY_NAME) {
    if (perScript[i] > bestCount) {
      bestScript = SCRIPTS[i];
      bestCount = perScript[i];
    }
  }
  const share = bestCount / units;
  if (bestScript === 'cjk') return { lang: kana > 0.2 * (han + kana) ? 'ja' : 'zh', score: share };
  if (bestScript === 'latin') return latinLanguage(hitsByLang, perScript[0], share);
  return { lang: SCRIPT_LANG[bestScript], score: share };
}
