import type { TensorInfo } from '@tensorflow/tfjs';
import type { NativeAddon } from '../addon.js';
import type { KernelArgs, NativeKernel } from '../kernels/types.js';
import { f32 } from '../kernels/util.js';
import { tf } from '../tf.js';

const FORWARD = 'YuanCausalAttention';
const BACKWARD = 'YuanCausalAttentionGrad';

/** [B, A, Sq, Sk, d] of q [B, A, Sq, d] and k [B, A, Sk, d]. */
function dims(q: TensorInfo, k: TensorInfo): [number, number, number, number, number] {
  const [b, a, sq, d] = q.shape;
  return [b, a, sq, k.shape[2], d];
}

/** The Float32Arrays of the named inputs (the bias may be absent); throws naming the kernel when one is not float32. */
function arrays(kernel: string, { inputs, backend }: KernelArgs, names: string[]): Float32Array[] {
  return names.map((n) => {
    const values = f32(backend, inputs[n]);
    if (!values) throw new Error(`${kernel}: ${n} must be float32 (got ${inputs[n].dtype})`);
    return values;
  });
}

const forward: NativeKernel = (args, addon: NativeAddon) => {
  const { q, k, bias } = args.inputs;
  const [qv, kv, vv] = arrays(FORWARD, args, ['q', 'k', 'v']);
  const bv = bias ? arrays(FORWARD, args, ['bias'])[0] : null;
  const [b, a, sq, sk, d] = dims(q, k);
  const o = args.backend.alloc(qv.length);
  const lse = args.backend.alloc(b * a * sq);
  addon.attention(qv, kv, vv, bv, o, lse, b * a, a, sq, sk, d, Number(args.attrs.scale));
  return [args.backend.makeTensorInfo(q.shape, 'float32', o), args.backend.makeTensorInfo([b, a, sq], 'float32', lse)];
};

const backward: NativeKernel = (args, addon: NativeAddon) => {
  const { q, k, bias } = args.inputs;
  const [qv, kv, vv, ov, lv, gv] = arrays(BACKWARD, args, ['q', 'k', 'v', 'o', 'lse', 'dy']);
  const bv = bias ? arrays(BACKWARD, args, ['bias'])[0] : null;
  const [b, a, sq, sk, d] = dims(q, k);
  const { backend } = args;
  const [dq, dk, dv] = [qv.length, kv.length, kv.length].map((n) => backend.alloc(n));
  const dbias = bv ? backend.alloc(b * a * sk) : null;
  addon.attentionGrad(qv, kv, vv, bv, ov, lv, gv, dq, dk, dv, dbias, b * a, a, sq, sk, d, Number(args.attrs.scale));
  const grads = [
    backend.makeTensorInfo(q.shape, 'float32', dq),
    backend.makeTensorInfo(k.shape, 'float32', dk),
    backend.makeTensorInfo(k.shape, 'float32', dv),
  ];
  // the bias gradient per head [B, A, Sk]; the op sums it over the heads
  if (dbias) grads.push(backend.makeTensorInfo([b, a, sk], 'float32', dbias));
  return grads;
};

/** The fused attention kernels by name (registered for the native backend only). */
export const attentionKernels: Record<string, NativeKernel> = { [FORWARD]: forward, [BACKWARD]: backward };

/** A one-line description of what is wrong with the attention inputs, or undefined when they fit. */
function checkInputs(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, keyBias: tf.Tensor | undefined): string | undefined {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    return `q, k and v must be [B, heads, S, d] (got [${q.shape}], [${k.shape}], [${v.shape}])`;
  const [b, a, sq, d] = q.shape;
  const sk = k.shape[2] as number;
  if (k.shape[0] !== b || k.shape[1] !== a || k.shape[3] !== d || v.shape.join() !== k.shape.join()) {
    return `k and v must be [${b}, ${a}, Sk, ${d}] like q [${q.shape}] (got [${k.shape}] and [${v.shape}])`;
  }
  if (sq > sk) return `q has ${sq} positions but k only ${sk} (the queries are the last Sq of the Sk positions)`;
  if (keyBias && keyBias.shape.join() !== [b, 1, 1, sk].join())
    return `keyBias must be [${b}, 1, 1, ${sk}] (got [${keyBias.shape}])`;
  if ([q, k, v, keyBias].some((t) => t && t.dtype !== 'float32')) return 'q, k, v and keyBias must be float32';
  if (b * a * sq * d === 0 || sk === 0) return `empty attention input (q [${q.shape}], k [${k.shape}])`;
  return undefined;
}

/**
 * Causal scaled dot-product attention as one native kernel forward and one backward (FlashAttention-2, Dao 2023):
 * softmax(scale · q kᵀ + keyBias + causal mask) v for q [B, A, Sq, d] and k, v [B, A, Sk, d] with Sq ≤ Sk; query i sits
 * at position Sk − Sq + i and sees keys 0..that position (Sq = Sk in training, Sq = 1 when decoding with a cache).
 * `keyBias` [B, 1, 1, Sk] (optional) is added to every head's scores (padding masks), and gets its gradient. Memory is
 * linear in S: the forward keeps the output and the log-sum-exp of each row [B, A, Sq], the backward recomputes the
 * scores tile by tile. Returns [B, A, Sq, d]. The op-by-op composite lives in @yuan/tensor (`causalAttention`), which
 * calls this only while the native backend is active. Throws a one-line error on another backend or for shapes
 * that do not fit.
 */
export function causalAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  options: { scale: number; keyBias?: tf.Tensor4D },
): tf.Tensor4D {
  if (tf.getBackend() !== 'native')
    throw new Error('causalAttention needs the native backend (@yuan/tensor falls back to its own ops elsewhere)');
  const bad = checkInputs(q, k, v, options.keyBias);
  if (bad) throw new Error(`causalAttention: ${bad}`);
  if (!Number.isFinite(options.scale))
    throw new Error(`causalAttention: scale must be a finite number (got ${options.scale})`);
  const attrs = { scale: options.scale };
  const withBias = options.keyBias !== undefined;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [tq, tk, tv, tb] = args.slice(0, -1) as tf.Tensor[];
    const inputs: tf.NamedTensorMap = withBias ? { q: tq, k: tk, v: tv, bias: tb } : { q: tq, k: tk, v: tv };
    const [o, lse] = tf.engine().runKernel(FORWARD, inputs, attrs) as tf.Tensor[];
    save(withBias ? [tq, tk, tv, o, lse, tb] : [tq, tk, tv, o, lse]);
    return {
      value: o,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv, so, slse, sb] = saved;
        const grads = tf
          .engine()
          .runKernel(
            BACKWARD,
            { q: sq, k: sk, v: sv, o: so, lse: slse, dy, ...(sb ? { bias: sb } : {}) },
            attrs,
          ) as tf.Tensor[];
        if (!sb) return grads;
        const [dq, dk, dv, dbias] = grads;
        const summed = tf.reshape(tf.sum(dbias, 1), sb.shape);
        dbias.dispose();
        return [dq, dk, dv, summed];
      },
    };
  });
  return (withBias ? op(q, k, v, options.keyBias!) : op(q, k, v)) as tf.Tensor4D;
}
