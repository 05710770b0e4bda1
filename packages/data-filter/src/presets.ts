import type { FilterPresetPlugin, FilterStep } from '@yuan/core';

/** One entry of a pipeline (the type lives in @yuan/core, beside the `filter-preset` plugin kind). */
export type { FilterStep };

/** A named pipeline that runs with no config: a plugin of kind `filter-preset`. */
export type FilterPreset = FilterPresetPlugin;

/** Built-in presets. `yuan-zh-en`: Chinese, English and code, every built-in filter at its default thresholds. */
export const FILTER_PRESETS: readonly FilterPreset[] = [
  {
    kind: 'filter-preset',
    name: 'yuan-zh-en',
    defaults: {},
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
