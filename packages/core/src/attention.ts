import { YuanError } from './errors.js';
import type { PluginBase } from './registry.js';

/** What an attention plugin is told about the layer it builds. */
export interface AttentionSpec {
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  layerIndex: number;
  numLayers: number;
  ropeBase: number;
  rmsNormEps: number;
  initStd: number;
}

/** How a parameter starts: normal(0, std), uniform(−bound, bound), zeros or ones. */
export type ParameterInit =
  { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'zeros' } | { kind: 'ones' };

/** A parameter a module owns: its name (relative to the module), shape (PyTorch layout: linear weights are [out, in]) and init. */
export interface ParameterSpec {
  name: string;
  shape: number[];
  init: ParameterInit;
  /**
   * Set when this parameter is stored fused but exchanged (Hugging Face layout) as equal row blocks under these names,
   * e.g. `qk_proj.weight` ⇄ [`q_proj.weight`, `k_proj.weight`].
   */
  parts?: string[];
}

/** The sizes an attention plugin's planner descriptors are given: one micro-batch through one layer, plain numbers. */
export interface AttentionShape {
  /** Sequences per micro-batch B. */
  batch: number;
  /** Tokens per sequence S. */
  seq: number;
  /** Hidden size H. */
  hidden: number;
  /** Query heads A. */
  heads: number;
  /** Head size d = H / A. */
  headDim: number;
  /** Whether RMSNorm runs as one fused kernel (the `native` backend) or as composed TensorFlow.js ops. */
  fusedKernels: boolean;
  /** Whether the attention core is the fused kernel (`attentionCoreActivation`). Default: `fusedKernels`. */
  fusedAttention?: boolean;
}

/** One named contribution to a memory term, in tensor elements (the caller multiplies by the element size). */
export interface ActivationTerm {
  name: string;
  elements: number;
}

/**
 * What a part of the model holds during one TensorFlow.js gradient call (tfjs-core 4.22 `engine.gradients`): the
 * tensors its forward ops keep for their gradients (`saved`) and the gradient buffers its backward creates
 * (`gradients`, one per differentiable op output); both live until the whole call ends. Views (reshapes, identity
 * clones of saved tensors) share buffers and are not counted.
 */
export interface ActivationTerms {
  saved: ActivationTerm[];
  gradients: ActivationTerm[];
}

/** Forward FLOPs of one layer's attention block for one micro-batch, 2 per multiply-add. */
export interface AttentionFlops {
  /** The Q, K, V and output projections. */
  projections: number;
  /** The attention core: scores QKᵀ and the weighted sum of V (`ropeAttentionFlops`). */
  core: number;
  /** Other work of the block (LFA's convolutions). Reported by the step-time model but not in its count, as in YUAN 2.0's Eq. 2. Default 0. */
  other?: number;
}

/** One entry of an attention layer's generation cache (a tensor whose axis 0 is the batch). */
export interface CacheEntrySpec {
  /** Its key in the layer's cache record (`k`, `v`, `lf_x`, ...). */
  name: string;
  /**
   * The axis that grows by one per token (`k` and `v` of `ropeAttention`: 2, in [B, heads, T, d]). Serving left-pads
   * this axis to batch sequences of different lengths, masks the padding (`keyBias`) and trims it when rows leave.
   * Undefined for state of a fixed size (LFA's last kernel − 1 inputs), which is only stacked over the batch.
   */
  timeAxis?: number;
  /** Elements per sequence: per token for an entry with a time axis, in all for a fixed one. */
  elements: number;
}

/**
 * An attention variant. `parameters` lists what it owns (names relative to `self_attn.`), so shapes and counts are
 * known without allocating; `create` builds the layer over those parameters. `Layer` is the tensor package's type.
 *
 * The optional descriptors are pure functions of plain numbers (no tensors), so the planner, the step-time model,
 * serving and checkpoint import can use a plugin without knowing it:
 * - `activation`: the memory the planner counts for the attention block, from the input-normed hidden states
 *   [B, S, H] through the output projection (the planner adds the layer's norms, residuals and MLP). Without it
 *   `planPipeline` stops with a one-line error rather than guess.
 * - `flops`: the block's forward FLOPs for the step-time model (`planTime`); without it `planTime` stops likewise.
 * - `cache`: the entries of the generation cache, so serving can batch, pad, trim and stack them. Without it
 *   serving decodes one request at a time (the choices of one request still decode together).
 * - `recognize`: whether a checkpoint's tensors are this plugin's, and under which options, for checkpoints whose
 *   config names no attention plugin (Hugging Face ones).
 * - `variant`: option sets by a short name (`lfa` `k7`), used as `NAME-SUFFIX` by `yuan experiment ablation`.
 * - `convert`: a layer of another plugin's checkpoint as this plugin's, with the same outputs (`yuan convert --to NAME`).
 */
export interface AttentionPlugin<
  Options = Record<string, unknown>,
  Layer = unknown,
  Tensor = unknown,
> extends PluginBase<'attention', Options> {
  parameters(spec: AttentionSpec, options: Options): ParameterSpec[];
  create(spec: AttentionSpec, options: Options, param: (name: string) => Tensor): Layer;
  /** The attention block's memory terms for one micro-batch, from the normed input [B,S,H] to the output projection. */
  activation?(shape: AttentionShape, options: Options): ActivationTerms;
  /** The attention block's forward FLOPs for one micro-batch. */
  flops?(shape: AttentionShape, options: Options): AttentionFlops;
  /** Every entry of the cache a layer returns for the next call (one per key, none missing). */
  cache?(spec: AttentionSpec, options: Options): CacheEntrySpec[];
  /**
   * `weights`: the first layer's tensors under `self_attn.` (Hugging Face names relative to it, e.g. `q_proj.weight`)
   * with their shapes. Returns the options (over the defaults) under which these are this plugin's parameters, or
   * undefined when they are not.
   */
  recognize?(weights: ReadonlyMap<string, readonly number[]>, spec: AttentionSpec): Partial<Options> | undefined;
  /** The options a short name stands for (`yuan experiment ablation --variants NAME-SUFFIX`), or undefined for an unknown one. */
  variant?(suffix: string): Partial<Options> | undefined;
  /**
   * One layer of a checkpoint written with another attention plugin (`from`: its name and options), as this plugin's
   * options and weights (names relative to `self_attn.`, PyTorch layout, row-major) that give the same outputs
   * (`yuan convert --to NAME`). `weights`: that layer's tensors under `self_attn.`. Throws a one-line error for a
   * source it cannot convert exactly.
   */
  convert?(
    from: { name: string; options: Record<string, unknown> },
    spec: AttentionSpec,
    weights: ReadonlyMap<string, Float32Array>,
  ): { options: Partial<Options>; weights: Map<string, Float32Array> };
}

/**
 * An attention plugin without its tensor code (`create`): its name, options, parameters and descriptors. The attention
 * packages export theirs from a `describe` entry that loads no TensorFlow.js, for tools that plan without tensors.
 */
export type AttentionDescription<Options = Record<string, unknown>> = Omit<AttentionPlugin<Options>, 'create'>;

/** Number of scalars in a list of parameter specs. */
export function countParameters(specs: readonly ParameterSpec[]): number {
  return specs.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Sum of a term list, in elements. */
export function sumTerms(terms: readonly ActivationTerm[]): number {
  return terms.reduce((n, t) => n + t.elements, 0);
}

/** Term lists joined in order. */
export function joinActivation(...parts: ActivationTerms[]): ActivationTerms {
  return { saved: parts.flatMap((p) => p.saved), gradients: parts.flatMap((p) => p.gradients) };
}

/** An op whose output (`elements`) is kept for its gradient and whose gradient buffer is as large. */
export function opActivation(name: string, elements: number): ActivationTerms {
  return { saved: [{ name, elements }], gradients: [{ name: `d ${name}`, elements }] };
}

/**
 * RMSNorm over `rows` vectors of `width`: composed = x², x·rsqrt(mean + eps), ·w (three [rows, width]) plus mean,
 * mean + eps, rsqrt ([rows] each) kept, the same again as gradients; fused (the `native` kernel) = output + rstd kept,
 * the output's gradient.
 */
export function rmsNormActivation(name: string, rows: number, width: number, fused: boolean): ActivationTerms {
  const x = rows * width;
  return fused
    ? {
        saved: [{ name: `${name} (fused): output + rstd`, elements: x + rows }],
        gradients: [{ name: `${name} (fused): d output`, elements: x }],
      }
    : {
        saved: [{ name: `${name}: x², x·r, output + mean, mean+eps, rsqrt`, elements: 3 * x + 3 * rows }],
        gradients: [{ name: `${name}: d of x², x·r, output, mean, mean+eps, rsqrt`, elements: 3 * x + 3 * rows }],
      };
}

/**
 * The attention core (`causalAttention` of @yuan/tensor: scores, softmax, weighted sum, between the transposed Q, K, V
 * [B, A, S, d] and the output [B, A, S, d]) as it runs:
 * - op by op (TensorFlow.js ops, every backend but `native`, or `fusedAttention: false`): QKᵀ, its scaled copy and the
 *   softmax probabilities [B, A, S, S] are kept; the backward makes 4 score-sized gradient buffers.
 * - fused (the `native` backend's FlashAttention-2 kernel, @yuan/tensor-native `csrc/attention.cc`): the forward
 *   allocates the output O [B, A, S, d] and the rows' log-sum-exp [B, A, S], both kept for the backward; the backward
 *   allocates only dQ, dK, dV (the gradients of the transposed Q, K, V, counted with them) plus, while it runs, a
 *   workspace per worker thread of two min(128, S) × 128 score tiles (query rows × keys: a tile never has more query
 *   rows than S) and a row vector [S] (and a private dQ [S, d] when the B·A heads are fewer than the threads; the
 *   forward's one min(128, S) × 256 tile is no larger), counted for one thread.
 *   Nothing is of size S × S.
 */
export function attentionCoreActivation(shape: AttentionShape): ActivationTerms {
  const { batch: b, seq: s, hidden: h, heads: a } = shape;
  if (!(shape.fusedAttention ?? shape.fusedKernels)) {
    const scores = b * a * s * s;
    return {
      saved: [{ name: 'attention scores QKᵀ, scaled, softmax probabilities [B,A,S,S]', elements: 3 * scores }],
      gradients: [{ name: 'd scores, scaled, masked, probabilities [B,A,S,S]', elements: 4 * scores }],
    };
  }
  return {
    saved: [{ name: 'fused attention: output O [B,A,S,d] and log-sum-exp [B,A,S]', elements: b * s * h + b * a * s }],
    gradients: [
      {
        name: 'fused attention backward workspace (one worker thread: two min(128, S) × 128 tiles and [S])',
        elements: 2 * Math.min(128, s) * 128 + s,
      },
    ],
  };
}

/**
 * The attention core every built-in plugin shares (`ropeAttention` of @yuan/tensor) as TensorFlow.js differentiates
 * it, given Q, K, V [B, S, A, d]: RoPE on Q and K (half split, neg, concat, x·cos, rot·sin kept: 4·[B,S,H] each;
 * gradients add the other half and the sum), Q, K, V transposed to [B, A, S, d], the attention core
 * (`attentionCoreActivation`: the fused kernel, or scores, softmax probabilities [B, A, S, S] op by op), the output
 * transposed back to [B, S, H]. With `fusedKernels` (the native backend) RoPE is one kernel that writes Q and K
 * head-major: nothing of its own is kept, and its backward makes dQ, dK.
 */
export function ropeAttentionActivation(shape: AttentionShape): ActivationTerms {
  const bsh = shape.batch * shape.seq * shape.hidden;
  // the native backend's fused RoPE kernel (`ropeHeads` of @yuan/tensor-native) reads Q and K as the projection's split
  // left them (counted there) and writes them head-major [B,A,S,d] (counted with V's transpose below); its backward
  // makes dQ, dK [B,S,H] from the head-major gradients
  const rope = shape.fusedKernels
    ? { saved: [], gradients: [{ name: 'd RoPE on Q and K (fused kernel): dQ, dK [B,S,H]', elements: 2 * bsh }] }
    : {
        saved: [{ name: 'RoPE on Q and K (split half, neg, concat, x·cos, rot·sin)', elements: 8 * bsh }],
        gradients: [{ name: 'd RoPE on Q and K', elements: 11 * bsh }],
      };
  return joinActivation(
    rope,
    opActivation(
      shape.fusedKernels ? 'Q, K (RoPE kernel) and V (transposed) in [B,A,S,d]' : 'Q, K, V transposed to [B,A,S,d]',
      3 * bsh,
    ),
    attentionCoreActivation(shape),
    {
      saved: [{ name: 'attention output transposed back', elements: bsh }],
      gradients: [{ name: 'd probabilities·V and its transpose', elements: 2 * bsh }],
    },
  );
}

/** Forward FLOPs of `ropeAttention`'s scores and weighted sum: 2·B·S²·H each, over all S keys (Megatron's and YUAN 2.0's count). */
export function ropeAttentionFlops(shape: AttentionShape): number {
  return 4 * shape.batch * shape.seq * shape.seq * shape.hidden;
}

/** The cache entries of `ropeAttention`: `k` (after RoPE) and `v`, each [B, heads, T, d], growing along axis 2. */
export function ropeAttentionCache(spec: AttentionSpec): CacheEntrySpec[] {
  const elements = spec.numHeads * spec.headDim;
  return [
    { name: 'k', timeAxis: 2, elements },
    { name: 'v', timeAxis: 2, elements },
  ];
}

/**
 * Which attention plugin wrote a checkpoint whose config names none: the one plugin whose `recognize` accepts the
 * first layer's attention tensors (`weights`, names relative to `self_attn.`), with the options it read from them.
 * `preferred` names the plugins asked first (those the user named, e.g. by `--plugin`, over the built-in ones): when
 * exactly one of them recognizes the tensors it wins even if others do too; when none of them does, all are asked.
 * Throws a one-line error when none or several (of the same preference) do; `where` names the checkpoint in it.
 */
export function recognizeAttention(
  plugins: readonly AttentionDescription<any>[], // eslint-disable-line @typescript-eslint/no-explicit-any
  weights: ReadonlyMap<string, readonly number[]>,
  spec: AttentionSpec,
  where: string,
  preferred: ReadonlySet<string> = new Set(),
): { name: string; options: Record<string, unknown> } {
  const all: { name: string; options: Record<string, unknown> }[] = [];
  for (const p of plugins) {
    const options = p.recognize?.(weights, spec);
    if (options) all.push({ name: p.name, options: options as Record<string, unknown> });
  }
  const first = all.filter((f) => preferred.has(f.name));
  const found = first.length ? first : all;
  if (found.length === 1) return found[0];
  const names = plugins.map((p) => p.name).sort();
  const tensors = [...weights.keys()].sort().join(', ') || 'none';
  if (found.length === 0) {
    throw new YuanError(
      'checkpoint',
      `${where}: no registered attention plugin recognizes the attention tensors (${tensors}; registered: ${names.join(', ') || 'none'}); set attention.name`,
    );
  }
  throw new YuanError(
    'checkpoint',
    `${where}: the attention tensors (${tensors}) fit several attention plugins (${found.map((f) => f.name).join(', ')}); set attention.name`,
  );
}
