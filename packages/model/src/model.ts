import { countParameters, YuanError, type ParameterSpec, type YuanConfig } from '@yuan/core';
import {
  initValues,
  linear,
  rmsNorm,
  ropeTables,
  Rng,
  swiglu,
  tf,
  type AttentionCache,
  type AttentionLayer,
  type TensorAttentionPlugin,
} from '@yuan/tensor';
import { attentionOptions, attentionSpec, modelParameters } from './parameters.js';

/** What generation keeps between steps: the number of tokens seen and each layer's attention cache. */
export interface ModelCache {
  length: number;
  layers: AttentionCache[];
}

/** Options of one forward pass. */
export interface ForwardOptions {
  /** Position ids [B, T]; default: cache length + 0..T−1 (pass reset positions for packed training data). */
  positions?: tf.Tensor2D;
  /** The cache from the previous call (generation). */
  cache?: ModelCache;
  /** Return a cache for the next call. Default false. */
  useCache?: boolean;
  /** Compute logits for the last position only (generation). Default false. */
  lastOnly?: boolean;
  /** Additive bias on attention scores over cache ++ new keys, [B, 1, 1, S] (padding masks of batched generation). */
  keyBias?: tf.Tensor4D;
  /** The cache length to check against maxPositions when rows are padded (default: the cache's length). */
  seen?: number;
}

interface Layer {
  attention: AttentionLayer;
  inputNorm: tf.Tensor;
  postNorm: tf.Tensor;
  upGate: tf.Tensor;
  down: tf.Tensor;
}

/** A YUAN-style decoder: tied embeddings, pre-norm layers of (attention plugin, SwiGLU), final RMSNorm. */
export class YuanModel {
  /** Trainable parameters by full name, in definition order. */
  readonly params: Map<string, tf.Variable>;
  /** The parameter specs (names, shapes, inits, fused parts). */
  readonly specs: ParameterSpec[];
  private readonly layers: Layer[];

  private constructor(
    readonly config: YuanConfig,
    readonly attention: TensorAttentionPlugin<unknown>,
    values: (spec: ParameterSpec) => Float32Array,
  ) {
    this.specs = modelParameters(config, attention);
    this.params = new Map(this.specs.map((s) => [s.name, tf.variable(tf.tensor(values(s), s.shape), true)]));
    const options = attentionOptions(config, attention);
    this.layers = Array.from({ length: config.model.numLayers }, (_, l) => {
      const p = (n: string) => this.param(`model.layers.${l}.${n}`);
      return {
        attention: attention.create(attentionSpec(config, l), options, (n) => p(`self_attn.${n}`)),
        inputNorm: p('input_layernorm.weight'),
        postNorm: p('post_attention_layernorm.weight'),
        upGate: p('mlp.up_gate_proj.weight'),
        down: p('mlp.down_proj.weight'),
      };
    });
  }

  /** A freshly initialised model (seeded: the same seed gives the same weights on every backend). */
  static init(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, seed = 0): YuanModel {
    const rng = new Rng(seed);
    return new YuanModel(config, attention, (s) => initValues(s.shape.reduce((a, b) => a * b, 1), s.init, rng));
  }

  /** A model over given weights (fused names, PyTorch layout); a missing or misshapen weight is an error. */
  static fromWeights(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, weights: Map<string, Float32Array>): YuanModel {
    return new YuanModel(config, attention, (s) => {
      const w = weights.get(s.name);
      const size = s.shape.reduce((a, b) => a * b, 1);
      if (!w) throw new YuanError('checkpoint', `weights have no ${s.name}`);
      if (w.length !== size) throw new YuanError('checkpoint', `${s.name} has ${w.length} values; the config implies [${s.shape}] = ${size}`);
      return w;
    });
  }

  /** The parameter of that full name. */
  param(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new YuanError('model', `no parameter ${name}`);
    return v;
  }

  /** Number of scalar parameters. */
  get parameterCount(): number {
    return countParameters(this.specs);
  }

  /** Throws a clear error if any id is outside the vocabulary. */
  checkIds(ids: readonly number[]): void {
    const v = this.config.model.vocabSize;
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= v);
    if (bad !== undefined) throw new YuanError('input', `token id ${bad} is outside the vocabulary (0..${v - 1})`);
  }

  /** Logits [B, T (or 1 with lastOnly), vocab] for int32 ids [B, T], and the cache for the next call if asked. */
  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): { logits: tf.Tensor3D; cache?: ModelCache } {
    const [b, t] = ids.shape;
    const past = options.cache?.length ?? 0;
    const seen = options.seen ?? past;
    if (seen + t > this.config.model.maxPositions) {
      throw new YuanError('input', `sequence of ${seen + t} tokens exceeds the model's maxPositions ${this.config.model.maxPositions}`);
    }
    const { rmsNormEps: eps, numHeads, hiddenSize, ropeBase } = this.config.model;
    return tf.tidy(() => {
      const positions =
        options.positions ?? (tf.tile(tf.range(past, past + t, 1, 'int32').expandDims(0), [b, 1]) as tf.Tensor2D);
      const { cos, sin } = ropeTables(positions, hiddenSize / numHeads, ropeBase);
      const embed = this.param('model.embed_tokens.weight');
      let h = tf.gather(embed, ids) as tf.Tensor3D;
      const caches: AttentionCache[] = [];
      this.layers.forEach((layer, l) => {
        const r = layer.attention.forward(rmsNorm(h, layer.inputNorm, eps) as tf.Tensor3D, {
          cos,
          sin,
          cache: options.cache?.layers[l],
          useCache: options.useCache ?? false,
          ...(options.keyBias ? { keyBias: options.keyBias } : {}),
        });
        if (r.cache) caches.push(r.cache);
        h = tf.add(h, r.out);
        h = tf.add(h, swiglu(rmsNorm(h, layer.postNorm, eps), layer.upGate, layer.down));
      });
      if (options.lastOnly) h = tf.slice(h, [0, t - 1, 0], [b, 1, hiddenSize]);
      const logits = linear(rmsNorm(h, this.param('model.norm.weight'), eps), embed) as tf.Tensor3D;
      return options.useCache ? { logits, cache: { length: past + t, layers: caches } } : { logits };
    });
  }

  /** Current weights as float32 arrays by fused name. */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  /** Frees every parameter. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}

/** Frees the tensors of a generation cache, except those that `next` (the cache that replaces it) still holds. */
export function disposeCache(cache: ModelCache | undefined, next?: ModelCache): void {
  const kept = new Set(next?.layers.flatMap((l) => Object.values(l)) ?? []);
  for (const layer of cache?.layers ?? []) for (const t of Object.values(layer)) if (!kept.has(t)) t.dispose();
}
