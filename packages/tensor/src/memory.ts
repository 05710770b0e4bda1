import { tf } from './tf.js';

/** Number of live tensors (for leak checks: it must not grow across steps). */
export function liveTensorCount(): number {
  return tf.memory().numTensors;
}
