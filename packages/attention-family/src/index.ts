/**
 * @yuan/attention-family: grouped-query (`gqa`), multi-head latent (`mla`, with TransMLA's GQA → MLA conversion),
 * Based (`based`) and Landmark (`landmark`) attention as attention plugins, each with LFA's filter as an option.
 */
export { gqaAttention } from './gqa.js';
export { mlaAttention } from './mla.js';
export { basedAttention } from './based.js';
export { landmarkAttention } from './landmark.js';
export { GQA_DEFAULTS, MLA_DEFAULTS, type GqaOptions, type MlaOptions } from './options.js';
import { gqaAttention } from './gqa.js';
import { mlaAttention } from './mla.js';
import { basedAttention } from './based.js';
import { landmarkAttention } from './landmark.js';
/** The plugins this package provides (what `yuan` registers from it): attention `gqa`, `mla`, `based`, `landmark`. */
export const plugins = [gqaAttention, mlaAttention, basedAttention, landmarkAttention];
