/**
 * The attention core's terms (scores, softmax, weighted sum: `causalAttention` of @yuan/tensor, between the transposed
 * Q, K, V [B,A,S,d] and the output [B,A,S,d]), in elements, as it runs:
 * - composed (TensorFlow.js ops, every backend but `native`): QKᵀ, its scaled copy and the softmax probabilities
 *   [B,A,S,S] are saved; the backward makes 4 score-sized gradient buffers (d scores, scaled, masked, probabilities).
 * - fused (the `native` backend's FlashAttention-2 kernel, @yuan/tensor-native `csrc/attention.cc`): the forward
 *   allocates the output O [B,A,S,d] and the rows' log-sum-exp [B,A,S], both kept for the backward; the backward
 *   allocates only dQ, dK, dV (the gradients of the transposed Q, K, V, counted with them) plus, while it runs, a
 *   workspace per worker thread of two 128 × 128 score tiles and a row vector [S] (and a private dQ [S,d] when the
 *   B·A heads are fewer than the threads; the forward's one 128 × 256 tile is no larger). Nothing is of size S × S.
 */
export function attentionCoreTerms(
  x: { batch: number; seq: number; hidden: number; heads: number },
  fused: boolean,
): { saved: { name: string; elements: number }[]; gradients: { name: string; elements: number }[] } {
  const { batch: b, seq: s, hidden: h, heads: a } = x;
  if (!fused) {
    const scores = b * a * s * s;
    return {
      saved: [{ name: 'attention scores QKᵀ, scaled, softmax probabilities [B,A,S,S]', elements: 3 * scores }],
      gradients: [{ name: 'd scores, scaled, masked, probabilities [B,A,S,S]', elements: 4 * scores }],
    };
  }
  return {
    saved: [{ name: 'fused attention: output O [B,A,S,d] and log-sum-exp [B,A,S]', elements: b * s * h + b * a * s }],
    gradients: [{ name: 'fused attention backward workspace (one worker thread: two 128 × 128 tiles and [S])', elements: 2 * 128 * 128 + s }],
  };
}
