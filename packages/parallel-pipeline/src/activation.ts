/**
 * The activation memory formula of OUR layer as TensorFlow.js runs it (README "Activation memory"): the one place to
 * adjust when measured bytes disagree. Everything here counts tensor elements; callers multiply by the element size.
 *
 * How TF.js autodiff holds memory (tfjs-core 4.22 `engine.gradients`, `tape.backpropagateGradients`): during a
 * gradient call every op keeps the inputs/outputs its gradient needs ("saved") until the WHOLE call ends, and every
 * gradient tensor produced on the way back (one per differentiable op output, plus the input's) also lives until the
 * call ends. So the working set of one backward over a segment = saved tensors + gradient buffers + fresh parameter
 * gradients of that segment. Views (reshape, identity clones of saved tensors) share buffers and are not counted.
 */

import { attentionCoreTerms } from './attention-core.js';

/** The sizes the formula needs. */
export interface ActivationShape {
  /** Micro-batch size B (sequences). */
  batch: number;
  /** Sequence length S (tokens). */
  seq: number;
  /** Hidden size H. */
  hidden: number;
  /** Attention heads A. */
  heads: number;
  /** SwiGLU inner size F (the fused up/gate projection has 2F outputs). */
  ffn: number;
  /** Vocabulary size V (logits [B, S, V]). */
  vocab: number;
  /** Attention plugin: `lfa` (with `lfa` options) or `mha`; any other name is counted as `mha` (see notes). */
  attention: string;
  /** LFA options (YUAN 2.0 default: two convs of kernel 2, hidden → hidden/2 → hidden, with RMSNorm). */
  lfa?: { convs?: number; kernel?: number; norm?: boolean };
  /** Whether RMSNorm and the SwiGLU activation are single fused kernels (the `native` backend) or composed ops. */
  fusedKernels: boolean;
  /** Whether the attention core is the fused kernel (`attentionCoreTerms`: memory linear in S). Default: `fusedKernels`. */
  fusedAttention?: boolean;
}

/** One named contribution, in elements. */
export interface ActivationTerm {
  name: string;
  elements: number;
}

/** A segment's memory: what its forward keeps for backward and the gradient buffers its backward creates. */
export interface SegmentActivation {
  /** Tensors kept by forward ops for their gradients (element counts). */
  saved: ActivationTerm[];
  /** Gradient buffers alive at the end of the segment's backward (element counts). */
  gradients: ActivationTerm[];
}

/** Sum of a term list, in elements. */
export function sumTerms(terms: readonly ActivationTerm[]): number {
  return terms.reduce((n, t) => n + t.elements, 0);
}

/** RMSNorm over [B,S,H]: composed = x², x·rsqrt(mean+eps), ·w (three [B,S,H]) + three [B,S]; fused = output + rstd [B,S]. */
function norm(name: string, bsh: number, bs: number, fused: boolean): SegmentActivation {
  return fused
    ? { saved: [{ name: `${name} (fused): output + rstd`, elements: bsh + bs }], gradients: [{ name: `${name} (fused): d output`, elements: bsh }] }
    : {
        saved: [{ name: `${name}: x², x·r, output + mean, mean+eps, rsqrt`, elements: 3 * bsh + 3 * bs }],
        gradients: [{ name: `${name}: d of x², x·r, output, mean, mean+eps, rsqrt`, elements: 3 * bsh + 3 * bs }],
      };
}

/**
 * Causal conv over time (`causalConv1d`): zeros history [B,K−1,Cin], concat [B,S+K−1,Cin], K shifted slices and
 * their stack (K·[B,S,Cin] each), the matMul [B,S,Cout] and the bias add [B,S,Cout]. K = 1 is one slice, no history.
 */
function conv(name: string, b: number, s: number, cin: number, cout: number, k: number): SegmentActivation {
  const bs = b * s;
  const outs = 2 * bs * cout;
  if (k === 1) {
    const e = bs * cin + outs;
    return { saved: [{ name: `${name}: slice + matMul + bias`, elements: e }], gradients: [{ name: `${name}: d slice, matMul, bias`, elements: e }] };
  }
  const shifted = b * (s + k - 1) * cin + 2 * k * bs * cin; // concat + K slices + stack
  return {
    saved: [{ name: `${name}: history, concat, ${k} slices, stack, matMul, bias`, elements: b * (k - 1) * cin + shifted + outs }],
    gradients: [{ name: `${name}: d concat, slices, stack, matMul, bias`, elements: shifted + outs }],
  };
}

function join(...parts: SegmentActivation[]): SegmentActivation {
  return { saved: parts.flatMap((p) => p.saved), gradients: parts.flatMap((p) => p.gradients) };
}

function same(name: string, elements: number): SegmentActivation {
  return { saved: [{ name, elements }], gradients: [{ name: `d ${name}`, elements }] };
}

/**
 * One decoder layer (packages/model `YuanModel.forward`): input RMSNorm → attention (LFA: two causal convs +
 * residual + RMSNorm for the Q/K input; fused QK and V projections; RoPE on Q and K; the causal attention core,
 * `attentionCoreTerms`; output projection) → residual → post-attention RMSNorm → SwiGLU with the fused up/gate [.., 2F] → residual.
 * The layer's input itself is not included (the caller keeps it as the checkpoint).
 */
export function layerActivation(x: ActivationShape): SegmentActivation {
  const { batch: b, seq: s, hidden: h, ffn: f } = x;
  const bs = b * s;
  const bsh = bs * h;
  const bsf = bs * f;
  const parts: SegmentActivation[] = [norm('input RMSNorm', bsh, bs, x.fusedKernels)];
  if (x.attention === 'lfa') {
    const convs = x.lfa?.convs ?? 2;
    const k = x.lfa?.kernel ?? 2;
    const mid = convs === 2 ? h / 2 : h;
    parts.push(conv('LFA conv1', b, s, h, mid, k));
    if (convs === 2) parts.push(conv('LFA conv2', b, s, mid, h, k));
    parts.push(same('LFA residual conv(x) + x', bsh));
    if (x.lfa?.norm ?? true) parts.push(norm('LFA RMSNorm', bsh, bs, x.fusedKernels));
    parts.push(same('fused QK projection [B,S,2H] + its split into Q, K', 4 * bsh));
    parts.push(same('V projection', bsh));
  } else {
    parts.push(same('Q, K, V projections', 3 * bsh));
  }
  // RoPE on Q and K: saved = half split, neg, concat, x·cos, rot·sin (4 [B,S,H]); gradients add the other half and the sum
  parts.push({ saved: [{ name: 'RoPE on Q and K (split half, neg, concat, x·cos, rot·sin)', elements: 8 * bsh }], gradients: [{ name: 'd RoPE on Q and K', elements: 11 * bsh }] });
  parts.push(same('Q, K, V transposed to [B,A,S,d]', 3 * bsh));
  parts.push(attentionCoreTerms(x, x.fusedAttention ?? x.fusedKernels));
  parts.push({ saved: [{ name: 'attention output transposed back', elements: bsh }], gradients: [{ name: 'd probabilities·V and its transpose', elements: 2 * bsh }] });
  parts.push(same('output projection', bsh));
  parts.push(same('residual after attention', bsh));
  parts.push(norm('post-attention RMSNorm', bsh, bs, x.fusedKernels));
  parts.push(same('fused up/gate projection [B,S,2F]', 2 * bsf));
  parts.push(x.fusedKernels ? same('SwiGLU activation (fused) [B,S,F]', bsf) : same('SwiGLU: split into up and gate, sigmoid, up·σ, ·gate', 5 * bsf));
  parts.push(same('down projection', bsh));
  parts.push(same('residual after MLP (the layer output)', bsh));
  parts.push({ saved: [], gradients: [{ name: 'd layer input (sent to the previous layer)', elements: bsh }] });
  return join(...parts);
}

/**
 * The head on the last stage: final RMSNorm, tied output projection to logits [B,S,V] and the training loss
 * (`crossEntropy` of @yuan/model: the target logit is gathered, no one-hot). Saved: logits, logits − max and
 * exp(logits − max) of the logSumExp = 3·[B,S,V]. Gradients: 5·[B,S,V]. Calibrated against TF.js (cpu backend,
 * distinct buffers, `src/measured.test.ts`): 8·[B,S,V] in all, within 2%.
 */
export function headActivation(x: ActivationShape): SegmentActivation {
  const bs = x.batch * x.seq;
  const bsv = bs * x.vocab;
  return join(
    norm('final RMSNorm', bs * x.hidden, bs, x.fusedKernels),
    {
      // the loss gathers the target logits (no one-hot [B·S, V]; @yuan/model crossEntropy); measured on TF.js cpu
      saved: [{ name: 'logits [B,S,V], logits − max, exp(logits − max) of the logSumExp', elements: 3 * bsv }],
      gradients: [{ name: 'logSumExp and target-gather gradients (5 × [B,S,V]: d exp, d shifted, the gather\'s dense scatter, d logits and their sum)', elements: 5 * bsv }],
    },
    { saved: [], gradients: [{ name: 'd final hidden states', elements: bs * x.hidden }] },
  );
}

/**
 * The embedding on the first stage: the gathered rows [B,S,H] are the first layer's input (kept as its checkpoint);
 * backward creates their gradient [B,S,H] and a dense [V,H] gradient of the gather, the latter counted by the
 * planner as a fresh parameter gradient.
 */
export function embeddingActivation(x: ActivationShape): SegmentActivation {
  return { saved: [], gradients: [{ name: 'd embedding output', elements: x.batch * x.seq * x.hidden }] };
}

/** The RoPE tables every stage computes per micro-batch: angles [B,S,d/2], their concat [B,S,d], cos and sin [B,S,1,d]. */
export function ropeTablesElements(x: ActivationShape): number {
  return 3.5 * x.batch * x.seq * (x.hidden / x.heads);
}
