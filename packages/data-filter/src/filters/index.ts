import type { FilterPlugin } from '@yuan/core';
import { badwordsFilter } from './badwords.js';
import { c4Filter } from './c4.js';
import { codeFilter } from './code.js';
import { exactDedupFilter } from './exact-dedup.js';
import { finewebFilter } from './fineweb.js';
import { gopherQualityFilter } from './gopher-quality.js';
import { gopherRepetitionFilter } from './gopher-repetition.js';
import { langidFilter } from './langid.js';
import { lengthFilter } from './length.js';
import { minhashFilter } from './minhash.js';
import { normalizeFilter } from './normalize.js';

/** Every built-in filter plugin. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each filter has its own options type
export const BUILTIN_FILTERS: readonly FilterPlugin<any>[] = [
  normalizeFilter,
  lengthFilter,
  langidFilter,
  codeFilter,
  gopherRepetitionFilter,
  gopherQualityFilter,
  c4Filter,
  finewebFilter,
  badwordsFilter,
  exactDedupFilter,
  minhashFilter,
];
