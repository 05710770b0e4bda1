/**
 * @yuan/attention-family/describe: the `gqa`, `mla`, `based` and `landmark` plugins without their tensor code (name,
 * options, parameters, planner/serving/checkpoint descriptors, `mla`'s GQA conversion). Loads no TensorFlow.js.
 */
export { gqaDescription } from './gqa-describe.js';
export { mlaDescription } from './mla-describe.js';
export { basedDescription } from './based-describe.js';
export { landmarkDescription } from './landmark-describe.js';
