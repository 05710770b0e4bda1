import * as tf from '@tensorflow/tfjs';

// PROD silences tfjs's console banners and debug checks; yuan reports the backend itself (`yuan env`).
tf.env().set('PROD', true);

/** The TensorFlow.js namespace every yuan package uses (one instance, with gradients and chained ops registered). */
export { tf };
