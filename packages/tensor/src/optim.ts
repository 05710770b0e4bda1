import { fusedFor, type AdamWHyper } from './fused.js';
import { tf } from './tf.js';

/**
 * One AdamW step with decoupled weight decay: m' = β1·m + (1−β1)·g, v' = β2·v + (1−β2)·g²,
 * p' = p − lr·((m'/(1−β1^step)) / (√(v'/(1−β2^step)) + eps) + wd·p). Returns the new p, m and v (the caller assigns
 * them); one kernel where the backend supplies a fused AdamW, the same ops elsewhere.
 */
export function adamwStep(
  p: tf.Tensor,
  g: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  h: AdamWHyper,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const f = fusedFor(p);
  if (f && g.dtype === 'float32') return f.adamwUpdate(p, g, m, v, h);
  const c1 = 1 - h.beta1 ** h.step;
  const c2 = 1 - h.beta2 ** h.step;
  return tf.tidy(() => {
    const m2 = tf.add(tf.mul(m, h.beta1), tf.mul(g, 1 - h.beta1));
    const v2 = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(g), 1 - h.beta2));
    const update = tf.div(tf.div(m2, c1), tf.add(tf.sqrt(tf.div(v2, c2)), h.eps));
    const decayed = h.weightDecay > 0 ? tf.add(update, tf.mul(p, h.weightDecay)) : update;
    return [tf.sub(p, tf.mul(decayed, h.lr)), m2, v2] as [tf.Tensor, tf.Tensor, tf.Tensor];
  });
}
