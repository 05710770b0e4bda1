/** One entry of a pipeline: a filter plugin name, its options, and an optional label (defaults to the name). */
export interface FilterStep {
  name: string;
  label?: string;
  options?: Record<string, unknown>;
}

/** A named pipeline that runs with no config. */
export interface FilterPreset {
  name: string;
  description: string;
  filters: FilterStep[];
}

/** Built-in presets. `yuan-zh-en`: Chinese, English and code, every built-in filter at its default thresholds. */
export const FILTER_PRESETS: readonly FilterPreset[] = [
  {
    name: 'yuan-zh-en',
    description:
      'Chinese + English + code: normalise, length, language id, code rules, Gopher repetition and quality, C4, FineWeb, exact and MinHash dedup',
    filters: [
      { name: 'normalize' },
      { name: 'length' },
      { name: 'langid' },
      { name: 'code' },
      { name: 'gopher-repetition' },
      { name: 'gopher-quality' },
      { name: 'c4' },
      { name: 'fineweb' },
      { name: 'exact-dedup' },
      { name: 'minhash' },
    ],
  },
];
