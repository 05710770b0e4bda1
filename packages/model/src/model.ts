import { countParameters, Rng, YuanError, type ParameterSpec, type YuanConfig } from '@yuan/core';
import {
  initValues,
  linear,
  rmsNorm,
  ropeTables,
  swiglu,
  tf,
  packedLinear,
  withLinearHooks,
  type AdapterLayer,
  type AttentionCache,
  type AttentionLayer,
  type LinearHook,
  type StoredWeight,
  type TensorAttentionPlugin,
} from '@yuan/tensor';
import type { Decoder } from './infer/decoder.js';
import { dequantizedValues, type InferenceWeights } from './infer/weights.js';
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

/**
 * Which part of the model an instance holds: the embedding, layers `[firstLayer, endLayer)` and the head (final
 * RMSNorm + the tied output projection). A part that has the head holds its own copy of `model.embed_tokens.weight`
 * (Megatron's word embeddings on the last pipeline stage); per-parameter initialisation makes both copies equal.
 */
export interface ModelPart {
  embedding: boolean;
  firstLayer: number;
  /** One past the last layer held. */
  endLayer: number;
  head: boolean;
}

/** The part that is the whole model. */
export function wholeModel(config: YuanConfig): ModelPart {
  return { embedding: true, firstLayer: 0, endLayer: config.model.numLayers, head: true };
}

/** The parameter specs a part holds, in model order (the embedding first when the part has the embedding or the head). */
export function partParameters(all: readonly ParameterSpec[], part: ModelPart): ParameterSpec[] {
  return all.filter((s) => {
    if (s.name === 'model.embed_tokens.weight') return part.embedding || part.head;
    if (s.name === 'model.norm.weight') return part.head;
    const m = /^model\.layers\.(\d+)\./.exec(s.name);
    if (!m) throw new YuanError('model', `parameter ${s.name} belongs to no model part`);
    const l = Number(m[1]);
    return l >= part.firstLayer && l < part.endLayer;
  });
}

/**
 * The seed of one parameter's initial values: a hash of the run seed and the parameter's name, so a parameter gets
 * the same values whichever other parameters (pipeline stages, model parts) exist. FNV-1a over the UTF-16 name.
 */
export function parameterSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
}

/** Options of one pass through a part. */
export interface PartForwardOptions {
  /** Position ids [B, T]; default: cache length + 0..T−1. */
  positions?: tf.Tensor2D;
}

/**
 * A YUAN-style decoder: tied embeddings, pre-norm layers of (attention plugin, SwiGLU), final RMSNorm. An instance
 * holds the whole model (`init`/`fromWeights` without a part) or one part of it (a pipeline stage): the embedding
 * `embed(ids) → [B, T, H]`, its layers `layers(h) → [B, T, H]` and the head `head(h) → [B, T, V]` are callable
 * separately, and together they are exactly `forward`.
 */
export class YuanModel {
  /** The parameter specs this part holds (names, shapes, inits, fused parts). */
  readonly specs: ParameterSpec[];
  /** The part of the model this instance holds. */
  readonly part: ModelPart;
  /**
   * The native decoder over the weights in their stored formats (models from `loadInferenceModel` on the native
   * backend): generation and full-sequence logits use it; the tfjs parameters are then made only if something asks.
   */
  decoder?: Decoder;
  private paramMap?: Map<string, tf.Variable>;
  private values?: (spec: ParameterSpec) => Float32Array;
  private blockList?: Layer[];
  private attached?: { adapter: AttachableAdapter; hooks: Map<tf.Tensor, LinearHook>; unused: Set<string> };
  /** `fromStoredWeights`: the names of the frozen linears held packed (their parameters are empty stand-ins). */
  private standIns?: Set<string>;
  /** `fromStoredWeights`: each stand-in parameter's stored parts, computed by `packedLinear`. */
  private packed?: Map<tf.Tensor, StoredWeight[]>;
  private hookCache?: ReadonlyMap<tf.Tensor, LinearHook>;

  private constructor(
    readonly config: YuanConfig,
    readonly attention: TensorAttentionPlugin<unknown>,
    values: (spec: ParameterSpec) => Float32Array,
    part: ModelPart | undefined,
    lazy = false,
  ) {
    this.part = part ?? wholeModel(config);
    const { firstLayer, endLayer } = this.part;
    if (!(
      Number.isInteger(firstLayer) &&
      Number.isInteger(endLayer) &&
      firstLayer >= 0 &&
      endLayer >= firstLayer &&
      endLayer <= config.model.numLayers
    )) {
      throw new YuanError(
        'model',
        `model part layers [${firstLayer}, ${endLayer}) are not a range of the model's ${config.model.numLayers} layers`,
      );
    }
    this.specs = partParameters(modelParameters(config, attention), this.part);
    this.values = values;
    if (!lazy) void this.blocks;
  }

  /** Trainable parameters by full name, in definition order (only this part's); made on first use for a lazy model. */
  get params(): Map<string, tf.Variable> {
    if (!this.paramMap) {
      const values = this.values!;
      const standIns = this.standIns;
      this.paramMap = new Map(
        this.specs.map((s) => {
          // tf.variable shares the initial tensor's data and leaves that tensor alive: free it, or it pins the weights
          const initial = standIns?.has(s.name) ? tf.zeros([0]) : tf.tensor(values(s), s.shape);
          const v = tf.variable(initial, !standIns?.has(s.name));
          initial.dispose();
          return [s.name, v];
        }),
      );
      this.values = undefined; // the source arrays are not kept once the variables hold the values
    }
    return this.paramMap;
  }

  private get blocks(): Layer[] {
    if (this.blockList) return this.blockList;
    const { config, attention } = this;
    const options = attentionOptions(config, attention);
    const blocks: Layer[] = [];
    for (let l = this.part.firstLayer; l < this.part.endLayer; l++) {
      const p = (n: string) => this.param(`model.layers.${l}.${n}`);
      blocks.push({
        attention: attention.create(attentionSpec(config, l), options, (n) => p(`self_attn.${n}`)),
        inputNorm: p('input_layernorm.weight'),
        postNorm: p('post_attention_layernorm.weight'),
        upGate: p('mlp.up_gate_proj.weight'),
        down: p('mlp.down_proj.weight'),
      });
    }
    return (this.blockList = blocks);
  }

  /**
   * A whole model whose tfjs parameters are made only when first used, from `values` (by spec); `decoder` (optional)
   * serves generation meanwhile. Used by `loadInferenceModel`.
   */
  static lazy(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    values: (spec: ParameterSpec) => Float32Array,
    decoder?: Decoder,
  ): YuanModel {
    const m = new YuanModel(config, attention, values, undefined, true);
    if (decoder) m.decoder = decoder;
    return m;
  }

  /**
   * A freshly initialised model or part (seeded per parameter: the same seed gives the same weights on every backend
   * and in every part that holds the parameter).
   */
  static init(config: YuanConfig, attention: TensorAttentionPlugin<unknown>, seed = 0, part?: ModelPart): YuanModel {
    return new YuanModel(
      config,
      attention,
      (s) =>
        initValues(
          s.shape.reduce((a, b) => a * b, 1),
          s.init,
          new Rng(parameterSeed(seed, s.name)),
        ),
      part,
    );
  }

  /** A model (or part) over given weights (fused names, PyTorch layout); a missing or misshapen weight is an error. */
  static fromWeights(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    weights: Map<string, Float32Array>,
    part?: ModelPart,
  ): YuanModel {
    return new YuanModel(
      config,
      attention,
      (s) => {
        const w = weights.get(s.name);
        const size = s.shape.reduce((a, b) => a * b, 1);
        if (!w) throw new YuanError('checkpoint', `weights have no ${s.name}`);
        if (w.length !== size)
          throw new YuanError(
            'checkpoint',
            `${s.name} has ${w.length} values; the config implies [${s.shape}] = ${size}`,
          );
        return w;
      },
      part,
    );
  }

  /**
   * A frozen model or part over weights in their storage formats (QLoRA's base for adapter training): every 2-D
   * weight but the embedding (the decoder layers' linears; fused ones as their stored parts) stays packed and runs
   * through `packedLinear` (its product on the packed data, an fp32 gradient for its input, none for itself), while the
   * embedding (tied head), the norms and the convolutions are float32 parameters dequantized once. The packed linears'
   * entries in `params` are empty stand-ins, so `weights()` is an error; the others are frozen as usual by the caller.
   * A stored weight missing for a parameter is YuanError 'checkpoint' naming it.
   */
  static fromStoredWeights(
    config: YuanConfig,
    attention: TensorAttentionPlugin<unknown>,
    stored: InferenceWeights,
    part?: ModelPart,
  ): YuanModel {
    const m = new YuanModel(config, attention, (s) => dequantizedValues(stored, s), part, true);
    const packedSpecs = m.specs.filter((s) => s.shape.length === 2 && s.name !== 'model.embed_tokens.weight');
    m.standIns = new Set(packedSpecs.map((s) => s.name));
    const packed = new Map<tf.Tensor, StoredWeight[]>();
    for (const spec of packedSpecs) {
      const parts = (spec.parts ?? [spec.name]).map((p) => {
        const name = p.replace(/\.weight$/, '');
        const w = stored.linears.get(name);
        if (!w) throw new YuanError('checkpoint', `weights have no ${name}`);
        return w;
      });
      packed.set(m.param(spec.name), parts);
    }
    m.packed = packed;
    void m.blocks;
    return m;
  }

  /** The linear hooks in effect in `layers`: the packed base's products, with the attached adapter's hooks over them. */
  private linearHooks(): ReadonlyMap<tf.Tensor, LinearHook> | undefined {
    if (!this.packed) return this.attached?.hooks;
    if (!this.hookCache) {
      const adapter = this.attached?.hooks;
      const all = new Map<tf.Tensor, LinearHook>(adapter ?? []);
      for (const [weight, parts] of this.packed) {
        const hook = adapter?.get(weight);
        const base = (v: tf.Tensor) => packedLinear(v, parts);
        all.set(weight, hook ? (x) => hook(x, base) : (x) => base(x));
      }
      this.hookCache = all;
    }
    return this.hookCache;
  }

  /** The parameter of that full name. */
  param(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new YuanError('model', `no parameter ${name} in this model part`);
    return v;
  }

  /** Number of scalar parameters this part holds. */
  get parameterCount(): number {
    return countParameters(this.specs);
  }

  /** True when this instance is the whole model. */
  get isWhole(): boolean {
    const p = this.part;
    return p.embedding && p.head && p.firstLayer === 0 && p.endLayer === this.config.model.numLayers;
  }

  /** Throws a clear error if any id is outside the vocabulary. */
  checkIds(ids: readonly number[]): void {
    const v = this.config.model.vocabSize;
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= v);
    if (bad !== undefined) throw new YuanError('input', `token id ${bad} is outside the vocabulary (0..${v - 1})`);
  }

  /** Hidden states [B, T, H] of int32 ids [B, T] (the token embedding). Needs the embedding. */
  embed(ids: tf.Tensor2D): tf.Tensor3D {
    if (!this.part.embedding) throw new YuanError('model', 'this model part has no embedding');
    return tf.gather(this.param('model.embed_tokens.weight'), ids) as tf.Tensor3D;
  }

  /**
   * This part's layers over hidden states [B, T, H] → [B, T, H]. `positions` [B, T] default to 0..T−1 (or follow the
   * cache); `cache` holds one entry per layer of this part.
   */
  layers(
    h: tf.Tensor3D,
    options: PartForwardOptions & { cache?: ModelCache; useCache?: boolean; keyBias?: tf.Tensor4D } = {},
  ): { hidden: tf.Tensor3D; cache?: ModelCache } {
    const [b, t] = h.shape;
    const past = options.cache?.length ?? 0;
    const { rmsNormEps: eps, numHeads, hiddenSize, ropeBase } = this.config.model;
    const run = () =>
      tf.tidy(() => {
        const positions =
          options.positions ?? (tf.tile(tf.range(past, past + t, 1, 'int32').expandDims(0), [b, 1]) as tf.Tensor2D);
        const { cos, sin } = ropeTables(positions, hiddenSize / numHeads, ropeBase);
        const caches: AttentionCache[] = [];
        let x = h;
        this.blocks.forEach((layer, l) => {
          const r = layer.attention.forward(rmsNorm(x, layer.inputNorm, eps) as tf.Tensor3D, {
            cos,
            sin,
            cache: options.cache?.layers[l],
            useCache: options.useCache ?? false,
            ...(options.keyBias ? { keyBias: options.keyBias } : {}),
          });
          if (r.cache) caches.push(r.cache);
          x = tf.add(x, r.out);
          x = tf.add(x, swiglu(rmsNorm(x, layer.postNorm, eps), layer.upGate, layer.down));
        });
        return (options.useCache
          ? { hidden: x, cache: { length: past + t, layers: caches } }
          : { hidden: x }) as unknown as tf.TensorContainer;
      }) as unknown as { hidden: tf.Tensor3D; cache?: ModelCache };
    const hooks = this.linearHooks();
    if (!hooks) return run();
    const out = withLinearHooks(hooks, run);
    const attached = this.attached;
    if (attached?.unused.size) {
      tf.dispose(out as unknown as tf.TensorContainer);
      const names = [...attached.unused];
      throw new YuanError(
        'adapter',
        `the ${this.attention.name} attention does not compute ${names.slice(0, 2).join(', ')}${names.length > 2 ? ` (+${names.length - 2} more)` : ''} through linear(), so the adapter cannot change it: leave it out of the adapter's targets`,
      );
    }
    return out;
  }

  /**
   * Runs this part's linear layers through `adapter` from now on (its hooks replace the plain products of the weights
   * it adapts that this part holds) and makes the model own it: `dispose` frees it, `attachAdapter` again replaces
   * (and frees) it. A whole model must hold every weight the adapter names; a weight that the attention plugin does
   * not compute through `linear` is found at the first pass, a YuanError 'adapter' naming it. The native `decoder`
   * (which does not run adapters) is dropped: the model then runs on its tfjs parameters.
   */
  attachAdapter(adapter: AttachableAdapter): void {
    this.decoder = undefined;
    const hooks = new Map<tf.Tensor, LinearHook>();
    const unused = new Set<string>();
    for (const [name, hook] of adapter.layer.hooks) {
      const weight = this.params.get(name);
      if (!weight) {
        if (this.isWhole) throw new YuanError('adapter', `the adapter adapts ${name}, which this model does not have`);
        continue;
      }
      unused.add(name);
      hooks.set(weight, (x, base) => {
        unused.delete(name);
        return hook(x, base);
      });
    }
    this.attached?.adapter.dispose();
    this.attached = { adapter, hooks, unused };
    this.hookCache = undefined;
  }

  /** The adapter attached with `attachAdapter`, if any. */
  get adapter(): AttachableAdapter | undefined {
    return this.attached?.adapter;
  }

  /** Logits [B, T, V] of hidden states [B, T, H]: final RMSNorm and the tied output projection. Needs the head. */
  head(h: tf.Tensor3D): tf.Tensor3D {
    if (!this.part.head) throw new YuanError('model', 'this model part has no head');
    return tf.tidy(
      () =>
        linear(
          rmsNorm(h, this.param('model.norm.weight'), this.config.model.rmsNormEps),
          this.param('model.embed_tokens.weight'),
        ) as tf.Tensor3D,
    );
  }

  /** Logits [B, T (or 1 with lastOnly), vocab] for int32 ids [B, T], and the cache for the next call if asked. Needs the whole model. */
  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): { logits: tf.Tensor3D; cache?: ModelCache } {
    if (!this.isWhole) throw new YuanError('model', 'forward needs the whole model; a part runs embed/layers/head');
    const [b, t] = ids.shape;
    const seen = options.seen ?? options.cache?.length ?? 0;
    if (seen + t > this.config.model.maxPositions) {
      throw new YuanError(
        'input',
        `sequence of ${seen + t} tokens exceeds the model's maxPositions ${this.config.model.maxPositions}`,
      );
    }
    type Out = { logits: tf.Tensor3D; cache?: ModelCache };
    if (
      this.decoder &&
      !this.paramMap &&
      !options.cache &&
      !options.useCache &&
      !options.positions &&
      !options.keyBias
    ) {
      // inference over stored weights: each row through the native decoder, all positions (or the last) as logits
      const ids2 = ids.arraySync();
      const rows = ids2.map((r) =>
        this.decoder!.forward([{ sequence: this.decoder!.newSequence(r.length), tokens: r }], !options.lastOnly),
      );
      const tt = options.lastOnly ? 1 : t;
      const flat = new Float32Array(b * tt * this.config.model.vocabSize);
      rows.forEach((r, i) => flat.set(r, i * r.length));
      return { logits: tf.tensor3d(flat, [b, tt, this.config.model.vocabSize]) };
    }
    return tf.tidy(() => {
      const r = this.layers(this.embed(ids), {
        positions: options.positions,
        cache: options.cache,
        useCache: options.useCache,
        keyBias: options.keyBias,
      });
      let h = r.hidden;
      if (options.lastOnly) h = tf.slice(h, [0, t - 1, 0], [b, 1, this.config.model.hiddenSize]);
      const logits = this.head(h);
      return (r.cache ? { logits, cache: r.cache } : { logits }) as unknown as tf.TensorContainer;
    }) as unknown as Out;
  }

  /** Current weights of this part as float32 arrays by fused name. */
  async weights(): Promise<Map<string, Float32Array>> {
    if (this.standIns)
      throw new YuanError(
        'model',
        'a model over packed weights (fromStoredWeights) holds no float32 copy of its linears',
      );
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  /** Frees every parameter, and the attached adapter. */
  dispose(): void {
    for (const v of this.paramMap?.values() ?? []) v.dispose();
    this.attached?.adapter.dispose();
    this.attached = undefined;
  }
}

/** What `YuanModel.attachAdapter` takes: an adapter's layer (its linear hooks) and how to free it (`AdapterModule` is one). */
export interface AttachableAdapter {
  readonly layer: AdapterLayer;
  dispose(): void;
}

/** Frees the tensors of a generation cache, except those that `next` (the cache that replaces it) still holds. */
export function disposeCache(cache: ModelCache | undefined, next?: ModelCache): void {
  const kept = new Set(next?.layers.flatMap((l) => Object.values(l)) ?? []);
  for (const layer of cache?.layers ?? []) for (const t of Object.values(layer)) if (!kept.has(t)) t.dispose();
}
