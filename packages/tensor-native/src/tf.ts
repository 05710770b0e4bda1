import * as tf from '@tensorflow/tfjs';

/** The TensorFlow.js namespace (the same tfjs-core instance as @yuan/tensor's, through the shared @tensorflow/tfjs). */
export { tf };
