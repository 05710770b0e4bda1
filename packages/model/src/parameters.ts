import {
  YuanError,
  type AttentionDescription,
  type AttentionSpec,
  type ParameterSpec,
  type YuanConfig,
} from '@yuan/core';

/** The attention spec of layer `layerIndex` of a config. */
export function attentionSpec(config: YuanConfig, layerIndex: number): AttentionSpec {
  const m = config.model;
  return {
    hiddenSize: m.hiddenSize,
    numHeads: m.numHeads,
    headDim: m.hiddenSize / m.numHeads,
    layerIndex,
    numLayers: m.numLayers,
    ropeBase: m.ropeBase,
    rmsNormEps: m.rmsNormEps,
    initStd: m.initStd,
  };
}

/** Merges a config's attention options over the plugin defaults and validates them. */
export function attentionOptions(config: YuanConfig, plugin: AttentionDescription<unknown>): unknown {
  const merged = { ...(plugin.defaults as Record<string, unknown>), ...config.attention.options };
  try {
    return plugin.validate ? plugin.validate(merged) : merged;
  } catch (e) {
    throw new YuanError(
      'config',
      `invalid config: attention.options for "${plugin.name}": ${(e as Error).message.replace(/^invalid config: /, '')}`,
    );
  }
}

/**
 * Every parameter of the model in order, with its full name (Hugging Face YUAN names; fused QK and up/gate are
 * listed with their parts), PyTorch-layout shape and init. Embeddings are tied: there is no `lm_head.weight` parameter
 * (exports write a copy of the embeddings under that name, see `writeModelFiles`).
 */
export function modelParameters(config: YuanConfig, plugin: AttentionDescription<unknown>): ParameterSpec[] {
  const { vocabSize: v, hiddenSize: h, ffnSize: f, numLayers, initStd } = config.model;
  const options = attentionOptions(config, plugin);
  const ones = { kind: 'ones' } as const;
  const specs: ParameterSpec[] = [
    { name: 'model.embed_tokens.weight', shape: [v, h], init: { kind: 'normal', std: initStd } },
  ];
  for (let l = 0; l < numLayers; l++) {
    const p = `model.layers.${l}.`;
    specs.push({ name: `${p}input_layernorm.weight`, shape: [h], init: ones });
    for (const a of plugin.parameters(attentionSpec(config, l), options)) {
      specs.push({ ...a, name: `${p}self_attn.${a.name}`, parts: a.parts?.map((x) => `${p}self_attn.${x}`) });
    }
    specs.push({ name: `${p}post_attention_layernorm.weight`, shape: [h], init: ones });
    specs.push({
      name: `${p}mlp.up_gate_proj.weight`,
      shape: [2 * f, h],
      init: { kind: 'normal', std: initStd },
      parts: [`${p}mlp.up_proj.weight`, `${p}mlp.gate_proj.weight`],
    });
    specs.push({
      name: `${p}mlp.down_proj.weight`,
      shape: [h, f],
      init: { kind: 'normal', std: initStd / Math.sqrt(2 * numLayers) },
    });
  }
  specs.push({ name: 'model.norm.weight', shape: [h], init: ones });
  return specs;
}
