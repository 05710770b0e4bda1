/**
 * @yuan/model/describe: what planning needs of the model without tensors, an entry that loads no TensorFlow.js: the
 * `mha` plugin without its tensor code (`mhaDescription`) and the model's parameter list (`modelParameters`).
 */
export { mhaDescription } from './mha-describe.js';
export { modelParameters, attentionSpec, attentionOptions } from './parameters.js';
