import type { tf } from './tf.js';

/**
 * What a linear layer computes instead of its plain product: given the input x [..., in] and `base` (the layer's own
 * product x → x·Wᵀ, through whatever kernel its weight has), it returns the output [..., out]. A LoRA adapter is
 * `base(x) + scale·(dropout(x)·Aᵀ)·Bᵀ`.
 */
export type LinearHook = (x: tf.Tensor, base: (x: tf.Tensor) => tf.Tensor) => tf.Tensor;

const stack: ReadonlyMap<tf.Tensor, LinearHook>[] = [];

/**
 * Runs `fn` (synchronously) with `hooks` in effect: inside it, `linear(x, w)` of a weight tensor `w` that is a key of
 * `hooks` returns `hooks.get(w)(x, base)` instead of x·wᵀ. Calls nest; the innermost map that holds a weight wins.
 * The hooks' ops are ordinary tfjs ops, so gradients flow through them (to an adapter's variables).
 */
export function withLinearHooks<T>(hooks: ReadonlyMap<tf.Tensor, LinearHook>, fn: () => T): T {
  stack.push(hooks);
  try {
    return fn();
  } finally {
    stack.pop();
  }
}

/** The hook in effect for a weight, if any (used by `linear`). */
export function linearHookOf(weight: tf.Tensor): LinearHook | undefined {
  for (let i = stack.length - 1; i >= 0; i--) {
    const hook = stack[i].get(weight);
    if (hook) return hook;
  }
  return undefined;
}
