import {
  joinActivation,
  opActivation,
  rmsNormActivation,
  ropeAttentionActivation,
  ropeAttentionCache,
  ropeAttentionFlops,
  type ActivationTerms,
  type AttentionFlops,
  type AttentionShape,
  type AttentionDescription,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';
import { LFA_DEFAULTS, parseLfaOptions, type LfaOptions } from './options.js';

/** Channels between the two convolutions: H/2 with two convs (YUAN 2.0), H with one. */
function lfaMiddle(hidden: number, o: LfaOptions): number {
  return o.convs === 2 ? hidden / 2 : hidden;
}

function convParams(name: string, cout: number, cin: number, kernel: number): ParameterSpec[] {
  const bound = 1 / Math.sqrt(cin * kernel); // PyTorch Conv2d default (kaiming-uniform, a = sqrt(5))
  return [
    { name: `lf_gate.${name}.weight`, shape: [cout, cin, kernel, 1], init: { kind: 'uniform', bound } },
    { name: `lf_gate.${name}.bias`, shape: [cout], init: { kind: 'uniform', bound } },
  ];
}

/** The parameter list of LFA with the given options (names relative to `self_attn.`). */
function lfaParameters(spec: AttentionSpec, o: LfaOptions): ParameterSpec[] {
  const h = spec.hiddenSize;
  const init = { kind: 'normal', std: spec.initStd } as const;
  const mid = lfaMiddle(h, o);
  return [
    { name: 'qk_proj.weight', shape: [2 * h, h], init, parts: ['q_proj.weight', 'k_proj.weight'] },
    { name: 'v_proj.weight', shape: [h, h], init },
    {
      name: 'o_proj.weight',
      shape: [h, h],
      init: { kind: 'normal', std: spec.initStd / Math.sqrt(2 * spec.numLayers) },
    },
    ...convParams('conv1', mid, h, o.kernel),
    ...(o.convs === 2 ? convParams('conv2', h, mid, o.kernel) : []),
    ...(o.norm
      ? [{ name: 'lf_gate.output_layernorm.weight', shape: [h], init: { kind: 'ones' } } as ParameterSpec]
      : []),
  ];
}

/**
 * Causal conv over time (`causalConv1d` of @yuan/tensor) as TensorFlow.js differentiates it: zeros history
 * [B,K−1,Cin], concat [B,S+K−1,Cin], K shifted slices and their stack (K·[B,S,Cin] each), the matMul [B,S,Cout] and
 * the bias add [B,S,Cout]. K = 1 is one slice, no history.
 */
function convActivation(name: string, b: number, s: number, cin: number, cout: number, k: number): ActivationTerms {
  const bs = b * s;
  const outs = 2 * bs * cout;
  if (k === 1) {
    const e = bs * cin + outs;
    return {
      saved: [{ name: `${name}: slice + matMul + bias`, elements: e }],
      gradients: [{ name: `${name}: d slice, matMul, bias`, elements: e }],
    };
  }
  const shifted = b * (s + k - 1) * cin + 2 * k * bs * cin; // concat + K slices + stack
  return {
    saved: [
      {
        name: `${name}: history, concat, ${k} slices, stack, matMul, bias`,
        elements: b * (k - 1) * cin + shifted + outs,
      },
    ],
    gradients: [{ name: `${name}: d concat, slices, stack, matMul, bias`, elements: shifted + outs }],
  };
}

/**
 * What `lfa` tells the planner, the step-time model, serving, checkpoint import and `yuan experiment ablation`
 * (pure arithmetic, no tensors). Activation: the convolutions, the residual conv(x) + x and its RMSNorm (the Q/K
 * input), the fused QK projection [B,S,2H] with its split, the V projection, the shared RoPE attention core and the
 * output projection. FLOPs: 8·H² per token for the projections; the convolutions (2·K·Cin·Cout per token each) are
 * `other`, which the paper's Eq. 2 leaves out. Cache: K and V, plus the last kernel − 1 inputs of each convolution
 * (`lf_x` [B,K−1,H], `lf_u` [B,K−1,H/2]), of fixed size. Checkpoints: `lf_gate.conv1.weight` [mid, H, K, 1] marks
 * LFA; `conv2` and `output_layernorm` say `convs` and `norm`.
 */
const lfaDescriptors = {
  activation(shape: AttentionShape, o: LfaOptions): ActivationTerms {
    const { batch: b, seq: s, hidden: h } = shape;
    const bsh = b * s * h;
    const mid = lfaMiddle(h, o);
    const parts = [convActivation('LFA conv1', b, s, h, mid, o.kernel)];
    if (o.convs === 2) parts.push(convActivation('LFA conv2', b, s, mid, h, o.kernel));
    parts.push(opActivation('LFA residual conv(x) + x', bsh));
    if (o.norm) parts.push(rmsNormActivation('LFA RMSNorm', b * s, h, shape.fusedKernels));
    parts.push(opActivation('fused QK projection [B,S,2H] + its split into Q, K', 4 * bsh));
    parts.push(opActivation('V projection', bsh));
    parts.push(ropeAttentionActivation(shape), opActivation('output projection', bsh));
    return joinActivation(...parts);
  },
  flops(shape: AttentionShape, o: LfaOptions): AttentionFlops {
    const bs = shape.batch * shape.seq;
    const h = shape.hidden;
    const mid = lfaMiddle(h, o);
    const convs = 2 * bs * o.kernel * (h * mid + (o.convs === 2 ? mid * h : 0));
    return { projections: 8 * bs * h * h, core: ropeAttentionFlops(shape), other: convs };
  },
  cache(spec: AttentionSpec, o: LfaOptions): CacheEntrySpec[] {
    const history = o.kernel - 1;
    const entries = ropeAttentionCache(spec);
    if (history > 0) {
      entries.push({ name: 'lf_x', elements: history * spec.hiddenSize });
      if (o.convs === 2) entries.push({ name: 'lf_u', elements: history * lfaMiddle(spec.hiddenSize, o) });
    }
    return entries;
  },
  recognize(weights: ReadonlyMap<string, readonly number[]>): Partial<LfaOptions> | undefined {
    const conv1 = weights.get('lf_gate.conv1.weight');
    const projections = ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight'];
    if (!conv1 || conv1.length !== 4 || !projections.every((n) => weights.has(n))) return undefined;
    const found: LfaOptions = {
      convs: weights.has('lf_gate.conv2.weight') ? 2 : 1,
      kernel: conv1[2],
      norm: weights.has('lf_gate.output_layernorm.weight'),
    };
    // only what differs from YUAN 2.0's defaults, so a YUAN checkpoint's config keeps `options: {}`
    return Object.fromEntries(
      Object.entries(found).filter(([k, v]) => LFA_DEFAULTS[k as keyof LfaOptions] !== v),
    ) as Partial<LfaOptions>;
  },
  /** The paper's Table 1 ablations: `nonorm` (two convs of kernel 2, no RMSNorm), `kN` (one conv of kernel N, no RMSNorm). */
  variant(suffix: string): Partial<LfaOptions> | undefined {
    if (suffix === 'nonorm') return { convs: 2, kernel: 2, norm: false };
    const k = /^k(\d+)$/.exec(suffix);
    return k ? { convs: 1, kernel: Number(k[1]), norm: false } : undefined;
  },
};

/**
 * The `lfa` plugin without its tensor code: name, options (YUAN 2.0's defaults), parameters and descriptors. This
 * module loads no TensorFlow.js (`@yuan/attention-lfa/describe`); `lfaAttention` adds `create`.
 */
export const lfaDescription: AttentionDescription<LfaOptions> = {
  kind: 'attention',
  name: 'lfa',
  description: 'YUAN 2.0 Localized Filtering-based Attention: causal convs + RMSNorm filter the input of Q and K',
  defaults: LFA_DEFAULTS,
  validate: parseLfaOptions,
  parameters: lfaParameters,
  ...lfaDescriptors,
};
