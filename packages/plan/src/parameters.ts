import { countParameters, YuanError, type ParameterSpec } from '@yuan/core';

/** The model's parameters grouped the way pipeline stages own them. */
export interface ParameterGroups {
  /** Parameters of each layer (`model.layers.N.*`), length L. */
  layers: number[];
  /** The word embedding `model.embed_tokens.weight` (V·H), owned by the first stage. */
  embedding: number;
  /** Everything else (final norm `model.norm.weight`, an untied `lm_head.weight`), owned by the last stage. */
  head: number;
}

/**
 * Groups a model's parameter list (`modelParameters(config, attention)` of @yuan/model: Hugging Face YUAN names) by
 * stage owner. Throws a one-line error when a layer index is outside 0..L−1 or a layer has no parameters.
 */
export function groupParameters(specs: readonly ParameterSpec[], numLayers: number): ParameterGroups {
  const layers = new Array<number>(numLayers).fill(0);
  let embedding = 0;
  let head = 0;
  for (const spec of specs) {
    const n = countParameters([spec]);
    const m = /^model\.layers\.(\d+)\./.exec(spec.name);
    if (m) {
      const l = Number(m[1]);
      if (l >= numLayers)
        throw new YuanError(
          'config',
          `parameter ${spec.name} belongs to layer ${l}, but the model has ${numLayers} layers`,
        );
      layers[l] += n;
    } else if (spec.name === 'model.embed_tokens.weight') embedding += n;
    else head += n;
  }
  const empty = layers.findIndex((n) => n === 0);
  if (empty >= 0)
    throw new YuanError('config', `the parameter list has no parameters for layer ${empty} of ${numLayers}`);
  return { layers, embedding, head };
}
