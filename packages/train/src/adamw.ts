import { YuanError } from '@yuan/core';
import { adamwStep, tf, type AdamWHyper } from '@yuan/tensor';
import type { OptimizerState } from './state.js';
import type { GradMap } from './grads.js';

/**
 * AdamW hyper-parameters besides the learning rate and step (YUAN 2.0 / Megatron: β 0.9/0.95, eps 1e-8, weight decay
 * 0.1 on all but 1-D parameters; the defaults live in `TRAIN_DEFAULTS`). The update itself is `adamwStep` of
 * @yuan/tensor.
 */
export type AdamWOptions = Omit<AdamWHyper, 'lr' | 'step'>;

/**
 * An AdamW update applied before the global gradient norm is known (`AdamW.speculativeUpdate`), waiting for
 * `AdamW.settleUpdate`: what it changed, saved, and the gradients it used (for a clipped redo).
 */
export interface SpeculativeUpdate {
  readonly params: Map<string, tf.Variable>;
  readonly grads: GradMap;
  readonly lr: number;
  readonly saved: { name: string; p: tf.Tensor; moments?: { m: tf.Tensor; v: tf.Tensor } }[];
  /** The optimizer's step before the update. */
  readonly before: number;
  settled: boolean;
}

/**
 * Whether a post-validated update stands as applied (`AdamW.settleUpdate` keeps it): the global gradient norm is finite
 * and at most `clip` (or `clip` ≤ 0, no clipping). Otherwise it is rolled back (and, for a finite norm, redone clipped).
 */
export function keepsUpdate(norm: number, clip: number): boolean {
  return Number.isFinite(norm) && !(clip > 0 && norm > clip);
}

/** One parameter's moment estimates. */
interface Moments {
  m: tf.Variable;
  v: tf.Variable;
}

/**
 * AdamW with decoupled weight decay (p ← p − lr·(m̂/(√v̂+eps) + wd·p)), skipped for 1-D parameters (norms, biases)
 * as Megatron groups them. State is kept per parameter name, so a caller may update any subset of parameters
 * (a pipeline stage, a ZeRO shard) with the same optimizer object.
 */
export class AdamW {
  /** Number of completed updates (the bias-correction step). */
  step = 0;
  private readonly state = new Map<string, Moments>();

  constructor(readonly options: AdamWOptions) {}

  private moments(name: string, p: tf.Variable): Moments {
    let s = this.state.get(name);
    if (!s) {
      s = { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false) };
      this.state.set(name, s);
    }
    return s;
  }

  /** Applies one update with learning rate `lr` to the parameters in `params` that have a gradient in `grads`. */
  update(params: Map<string, tf.Variable>, grads: GradMap, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.options;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) continue;
      const s = this.moments(name, p);
      const wd = p.shape.length > 1 ? weightDecay : 0;
      const [p2, m2, v2] = adamwStep(p, g, s.m, s.v, { lr, beta1, beta2, eps, weightDecay: wd, step: this.step });
      s.m.assign(m2);
      s.v.assign(v2);
      p.assign(p2);
      tf.dispose([p2, m2, v2]);
    }
  }

  /**
   * Post-validation (Qi et al. 2024, §5, "bypassing optimizer synchronizations"): applies the update with the gradients
   * as they are before the global gradient norm is known, then awaits `norm` and settles it (`settleUpdate`): kept when
   * the norm is finite and at most `clip` (or `clip` ≤ 0), else restored and, for a finite norm over `clip`, redone
   * with the gradients scaled by clip / (norm + 1e-6) — the same parameters as clipping first (`clipGrads`, Megatron's
   * semantics). A non-finite norm leaves everything as before and resolves with `rolledBack` and `applied: false`; the
   * caller decides (the trainer stops, as without the option).
   */
  async postValidatedUpdate(
    params: Map<string, tf.Variable>,
    grads: GradMap,
    lr: number,
    norm: Promise<number> | number,
    clip: number,
  ): Promise<{ norm: number; rolledBack: boolean; applied: boolean }> {
    const pending = this.speculativeUpdate(params, grads, lr);
    let n: number;
    try {
      n = await norm;
    } catch (e) {
      this.settleUpdate(pending, Number.NaN, clip); // no norm: the state as before the update
      throw e;
    }
    return { norm: n, ...this.settleUpdate(pending, n, clip) };
  }

  /**
   * The first half of a post-validated update: saves what the update changes (parameters, moments, step), then
   * applies it with `grads` unclipped. The caller must call `settleUpdate` with the global norm once it is known
   * (the update may be undone until then), and keep `grads` alive until it has. Memory: a copy of the touched
   * parameters and their moments (12 bytes per parameter in fp32) lives until the settle.
   */
  speculativeUpdate(params: Map<string, tf.Variable>, grads: GradMap, lr: number): SpeculativeUpdate {
    const touched = [...grads.keys()].filter((n) => params.has(n));
    const saved = touched.map((name) => {
      const had = this.state.get(name);
      return {
        name,
        p: tf.clone(params.get(name)!),
        moments: had ? { m: tf.clone(had.m), v: tf.clone(had.v) } : undefined,
      };
    });
    const before = this.step;
    this.update(params, grads, lr);
    return { params, grads, lr, saved, before, settled: false };
  }

  /**
   * Settles a `speculativeUpdate` with the global gradient norm: kept (`rolledBack: false`) when `norm` is finite and
   * at most `clip` (or `clip` ≤ 0); else the saved parameters, moments and step are restored and, for a finite norm
   * over `clip`, the update is redone with the gradients scaled by clip / (norm + 1e-6) (`applied: true`); a
   * non-finite norm leaves the state as before the update (`applied: false`). Frees the saved copies; settling twice
   * is a YuanError.
   */
  settleUpdate(u: SpeculativeUpdate, norm: number, clip: number): { rolledBack: boolean; applied: boolean } {
    if (u.settled) throw new YuanError('usage', 'a speculative optimizer update was settled twice');
    u.settled = true;
    try {
      if (keepsUpdate(norm, clip)) return { rolledBack: false, applied: true };
      for (const sv of u.saved) {
        u.params.get(sv.name)!.assign(sv.p);
        const now = this.state.get(sv.name)!;
        if (sv.moments) {
          now.m.assign(sv.moments.m);
          now.v.assign(sv.moments.v);
        } else {
          now.m.dispose();
          now.v.dispose();
          this.state.delete(sv.name);
        }
      }
      this.step = u.before;
      if (!Number.isFinite(norm)) return { rolledBack: true, applied: false };
      const scale = clip / (norm + 1e-6);
      const scaled: GradMap = new Map([...u.grads].map(([name, g]) => [name, tf.mul(g, scale)]));
      try {
        this.update(u.params, scaled, u.lr);
      } finally {
        for (const g of scaled.values()) g.dispose();
      }
      return { rolledBack: true, applied: true };
    } finally {
      for (const sv of u.saved) tf.dispose([sv.p, ...(sv.moments ? [sv.moments.m, sv.moments.v] : [])]);
    }
  }

  /** The moments by name (`m.<param>` and `v.<param>`, flat float32) and the bias-correction step, for a checkpoint. */
  async exportState(): Promise<OptimizerState> {
    const moments = new Map<string, Float32Array>();
    for (const [name, s] of this.state) {
      moments.set(`m.${name}`, (await s.m.data()) as Float32Array);
      moments.set(`v.${name}`, (await s.v.data()) as Float32Array);
    }
    return { step: this.step, moments };
  }

  /**
   * Restores the moments of every parameter in `params` from `state` (replacing any current state). A parameter
   * without both moments, or with the wrong size, is an error: a resumed run never starts from zeroed moments.
   */
  importState(params: Map<string, tf.Variable>, state: OptimizerState): void {
    this.dispose();
    this.step = state.step;
    for (const [name, p] of params) {
      const m = state.moments.get(`m.${name}`);
      const v = state.moments.get(`v.${name}`);
      if (!m || !v) throw new YuanError('checkpoint', `the optimizer state has no moments for ${name}`);
      if (m.length !== p.size || v.length !== p.size)
        throw new YuanError(
          'checkpoint',
          `the optimizer moments of ${name} have ${m.length} values; the parameter has ${p.size}`,
        );
      this.state.set(name, {
        m: tf.variable(tf.tensor(m, p.shape), false),
        v: tf.variable(tf.tensor(v, p.shape), false),
      });
    }
  }

  /** Frees the optimizer state. */
  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}
