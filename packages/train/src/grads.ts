import { YuanError } from '@yuan/core';
import { tf } from '@yuan/tensor';

/** Gradients by parameter name. */
export type GradMap = Map<string, tf.Tensor>;

/**
 * Loss and gradients of one micro-batch: `lossFn` runs the forward pass; gradients are taken with respect to every
 * variable in `params`. Intermediate tensors are freed; the caller owns the returned loss and gradients.
 */
export function microBatchGrads(
  params: Map<string, tf.Variable>,
  lossFn: () => tf.Scalar,
): { loss: tf.Scalar; grads: GradMap } {
  const names = [...params.keys()];
  const vars = names.map((n) => params.get(n)!);
  const { value, grads } = tf.variableGrads(lossFn, vars);
  const out: GradMap = new Map();
  for (const [i, n] of names.entries()) {
    const g = grads[vars[i].name];
    out.set(n, g ?? tf.zerosLike(vars[i]));
  }
  return { loss: value, grads: out };
}

/** Adds `grads` scaled by `weight` into `into` (a new sum on first use), freeing `grads` and the old sum. Returns the new sum. */
export function accumulateGrads(into: GradMap | undefined, grads: GradMap, weight: number): GradMap {
  const out: GradMap = new Map();
  for (const [name, g] of grads) {
    const prev = into?.get(name);
    const next = prev
      ? tf.tidy(() => tf.add(prev, weight === 1 ? g : tf.mul(g, weight)))
      : weight === 1
        ? g
        : tf.mul(g, weight);
    if (prev) prev.dispose();
    if (next !== g) g.dispose();
    out.set(name, next);
  }
  return out;
}

/** The global L2 norm of a set of gradients (as one number). */
export async function gradNorm(grads: GradMap): Promise<number> {
  const sq = tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))));
  const v = (await sq.data())[0];
  sq.dispose();
  return Math.sqrt(v);
}

/**
 * The factor that brings gradients of global norm `norm` to at most `maxNorm`: maxNorm / (norm + 1e-6) when the norm is
 * above it (Megatron's clip_grad_norm), else 1; `maxNorm` ≤ 0 disables clipping.
 */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/**
 * Throws YuanError 'nan' naming step `step` when the step's loss or global gradient norm is not finite — every engine
 * checks this before any parameter changes.
 */
export function assertFiniteStep(loss: number, norm: number, step: number): void {
  if (Number.isFinite(loss) && Number.isFinite(norm)) return;
  const what = Number.isFinite(loss) ? `gradient norm is ${norm} (loss ${loss.toFixed(4)})` : `loss is ${loss}`;
  throw new YuanError('nan', `${what} at step ${step}: training stopped; parameters were not updated`);
}

/** Scales gradients in place so their global norm is at most `maxNorm` (no-op when `maxNorm` ≤ 0 or the norm is below it). */
export function clipGrads(grads: GradMap, norm: number, maxNorm: number): void {
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return;
  for (const [name, g] of grads) {
    grads.set(name, tf.mul(g, scale));
    g.dispose();
  }
}

/** Frees every gradient in the map. */
export function disposeGrads(grads: GradMap | undefined): void {
  for (const g of grads?.values() ?? []) g.dispose();
}
