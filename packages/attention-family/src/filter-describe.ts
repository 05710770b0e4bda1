import {
  joinActivation,
  opActivation,
  rmsNormActivation,
  type ActivationTerms,
  type AttentionSpec,
  type CacheEntrySpec,
  type ParameterSpec,
} from '@yuan/core';

/**
 * LFA's filter (YUAN 2.0 §3.1, the `lfa` plugin's defaults) as these plugins offer it: z = RMSNorm(conv2(conv1(x)) + x),
 * two causal convolutions of kernel 2 over time (hidden → hidden/2 → hidden) with biases. Parameter names are LFA's
 * (`lf_gate.conv1`, `lf_gate.conv2`, `lf_gate.output_layernorm`), so a Hugging Face loader for YUAN finds them.
 */
export const FILTER_KERNEL = 2;

/** The filter's parameters for a hidden size (names relative to `self_attn.`), PyTorch Conv2d's default init. */
export function filterParameters(spec: AttentionSpec): ParameterSpec[] {
  const h = spec.hiddenSize;
  const mid = h / 2;
  const conv = (name: string, cout: number, cin: number): ParameterSpec[] => {
    const bound = 1 / Math.sqrt(cin * FILTER_KERNEL);
    return [
      { name: `lf_gate.${name}.weight`, shape: [cout, cin, FILTER_KERNEL, 1], init: { kind: 'uniform', bound } },
      { name: `lf_gate.${name}.bias`, shape: [cout], init: { kind: 'uniform', bound } },
    ];
  };
  return [
    ...conv('conv1', mid, h),
    ...conv('conv2', h, mid),
    { name: 'lf_gate.output_layernorm.weight', shape: [h], init: { kind: 'ones' } },
  ];
}

/**
 * The filter's memory terms for [B,S,H] (as `lfa` counts its convolutions: zero history, concat, two shifted slices,
 * their stack, matMul and bias add per conv), the residual and the RMSNorm.
 */
export function filterActivation(b: number, s: number, h: number, fused: boolean): ActivationTerms {
  const conv = (name: string, cin: number, cout: number): ActivationTerms => {
    const bs = b * s;
    const shifted = b * (s + 1) * cin + 4 * bs * cin;
    return {
      saved: [
        {
          name: `${name}: history, concat, 2 slices, stack, matMul, bias`,
          elements: b * cin + shifted + 2 * bs * cout,
        },
      ],
      gradients: [{ name: `${name}: d concat, slices, stack, matMul, bias`, elements: shifted + 2 * bs * cout }],
    };
  };
  return joinActivation(
    conv('filter conv1', h, h / 2),
    conv('filter conv2', h / 2, h),
    opActivation('filter residual conv(x) + x', b * s * h),
    rmsNormActivation('filter RMSNorm', b * s, h, fused),
  );
}

/** The filter's forward FLOPs: 2·K·(H·H/2 + H/2·H) per token. */
export function filterFlops(b: number, s: number, h: number): number {
  return 2 * b * s * FILTER_KERNEL * h * h;
}

/** The filter's generation state: the last K − 1 inputs of each convolution (`lf_x` [B,1,H], `lf_u` [B,1,H/2]), fixed size. */
export function filterCache(spec: AttentionSpec): CacheEntrySpec[] {
  return [
    { name: 'lf_x', elements: (FILTER_KERNEL - 1) * spec.hiddenSize },
    { name: 'lf_u', elements: (FILTER_KERNEL - 1) * (spec.hiddenSize / 2) },
  ];
}

/** Whether a layer's weights (names relative to `self_attn.`) carry the filter. */
export function hasFilter(weights: ReadonlyMap<string, readonly number[]>): boolean {
  return weights.has('lf_gate.conv1.weight');
}

/** No terms (for joining optional parts). */
export const NONE: ActivationTerms = { saved: [], gradients: [] };
