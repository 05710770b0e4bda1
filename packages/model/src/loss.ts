import { tf } from '@yuan/tensor';

/**
 * Mean cross-entropy of logits [B, T, V] against int32 targets [B, T], over positions where `mask` [B, T] is 1
 * (all positions without a mask): sum(loss·mask) / sum(mask), as YUAN's loss_func. The target logit is gathered from
 * the flat logits (no one-hot [B·T, V] tensor: at YUAN's 135,040-token vocabulary that would be 2.2 GB per 4096 tokens).
 */
export function crossEntropy(logits: tf.Tensor3D, targets: tf.Tensor2D, mask?: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const v = logits.shape[2];
    const flat = tf.reshape(logits, [-1, v]) as tf.Tensor2D;
    const rows = flat.shape[0];
    const index = tf.add(tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(v, 'int32')), tf.reshape(targets, [-1]));
    const picked = tf.gather(tf.reshape(flat, [-1]), index);
    const losses = tf.sub(tf.logSumExp(flat, -1), picked);
    if (!mask) return tf.mean(losses) as tf.Scalar;
    const m = tf.reshape(tf.cast(mask, 'float32'), [-1]);
    return tf.div(tf.sum(tf.mul(losses, m)), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
  });
}

/** Mean next-token cross-entropy of logits [B, T, V] for the ids [B, T] they were computed from (T−1 predictions per row). */
export function nextTokenLoss(logits: tf.Tensor3D, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [b, t, v] = logits.shape;
    const pred = tf.slice(logits, [0, 0, 0], [b, t - 1, v]) as tf.Tensor3D;
    const targets = tf.slice(ids, [0, 1], [b, t - 1]) as tf.Tensor2D;
    return crossEntropy(pred, targets);
  });
}
