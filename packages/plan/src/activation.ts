/**
 * The activation memory formula of OUR layer as TensorFlow.js runs it (README "Activation memory"): the one place to
 * adjust when measured bytes disagree. Everything here counts tensor elements; callers multiply by the element size.
 *
 * How TF.js autodiff holds memory (tfjs-core 4.22 `engine.gradients`, `tape.backpropagateGradients`): during a
 * gradient call every op keeps the inputs/outputs its gradient needs ("saved") until the WHOLE call ends, and every
 * gradient tensor produced on the way back (one per differentiable op output, plus the input's) also lives until the
 * call ends. So the working set of one backward over a segment = saved tensors + gradient buffers + fresh parameter
 * gradients of that segment. Views (reshape, identity clones of saved tensors) share buffers and are not counted.
 * The attention block's terms are its plugin's (`AttentionPlugin.activation` of @yuan/core); this file has the rest.
 */
import {
  joinActivation,
  opActivation,
  rmsNormActivation,
  sumTerms,
  type ActivationTerm as CoreActivationTerm,
  type ActivationTerms,
  type AttentionShape,
} from '@yuan/core';

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
  /** Whether RMSNorm and the SwiGLU activation are single fused kernels (the `native` backend) or composed ops. */
  fusedKernels: boolean;
  /** Whether the attention core is the fused kernel (`attentionCoreActivation` of @yuan/core). Default: `fusedKernels`. */
  fusedAttention?: boolean;
}

/** One named contribution, in elements. */
export type ActivationTerm = CoreActivationTerm;

/** A segment's memory: what its forward keeps for backward (`saved`) and the gradient buffers its backward creates (`gradients`). */
export type SegmentActivation = ActivationTerms;

/** Sum of a term list, in elements (`sumTerms` of @yuan/core). */
export { sumTerms };

/** The shape an attention plugin's `activation` and `flops` descriptors are given for this micro-batch. */
export function attentionShape(x: ActivationShape): AttentionShape {
  return {
    batch: x.batch,
    seq: x.seq,
    hidden: x.hidden,
    heads: x.heads,
    headDim: x.hidden / x.heads,
    fusedKernels: x.fusedKernels,
    fusedAttention: x.fusedAttention ?? x.fusedKernels,
  };
}

/**
 * One decoder layer (packages/model `YuanModel.forward`): input RMSNorm → the attention block (`attention`: its
 * plugin's `activation` terms, from the normed input through the output projection) → residual → post-attention
 * RMSNorm → SwiGLU with the fused up/gate [.., 2F] → residual. The layer's input itself is not included (the caller
 * keeps it as the checkpoint).
 */
export function layerActivation(x: ActivationShape, attention: SegmentActivation): SegmentActivation {
  const { batch: b, seq: s, hidden: h, ffn: f } = x;
  const bs = b * s;
  const bsh = bs * h;
  const bsf = bs * f;
  return joinActivation(
    rmsNormActivation('input RMSNorm', bs, h, x.fusedKernels),
    attention,
    opActivation('residual after attention', bsh),
    rmsNormActivation('post-attention RMSNorm', bs, h, x.fusedKernels),
    opActivation('fused up/gate projection [B,S,2F]', 2 * bsf),
    x.fusedKernels
      ? opActivation('SwiGLU activation (fused) [B,S,F]', bsf)
      : opActivation('SwiGLU: split into up and gate, sigmoid, up·σ, ·gate', 5 * bsf),
    opActivation('down projection', bsh),
    opActivation('residual after MLP (the layer output)', bsh),
    { saved: [], gradients: [{ name: 'd layer input (sent to the previous layer)', elements: bsh }] },
  );
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
  return joinActivation(
    rmsNormActivation('final RMSNorm', bs, x.hidden, x.fusedKernels),
    {
      // the loss gathers the target logits (no one-hot [B·S, V]; @yuan/model crossEntropy); measured on TF.js cpu
      saved: [{ name: 'logits [B,S,V], logits − max, exp(logits − max) of the logSumExp', elements: 3 * bsv }],
      gradients: [
        {
          name: "logSumExp and target-gather gradients (5 × [B,S,V]: d exp, d shifted, the gather's dense scatter, d logits and their sum)",
          elements: 5 * bsv,
        },
      ],
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
