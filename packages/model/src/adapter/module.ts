import { countParameters, Rng, YuanError, type ParameterSpec } from '@yuan/core';
import { initValues, tf, type AdapterLayer, type TensorAdapterPlugin } from '@yuan/tensor';
import { parameterSeed } from '../model.js';

/**
 * An adapter plugin's options merged over its defaults and validated (a config's `adapter.options`); a bad field is a
 * ConfigError naming `adapter.options.<field>`.
 */
export function adapterOptions(plugin: TensorAdapterPlugin<unknown>, options: Record<string, unknown> = {}): unknown {
  const merged = { ...(plugin.defaults as Record<string, unknown>), ...options };
  return plugin.validate ? plugin.validate(merged) : merged;
}

/**
 * An adapter instance: a plugin (such as `lora`) with its options and its own parameters (tfjs variables) for one base
 * model, and the layer built over them. Attach it to a model (`YuanModel.attachAdapter`) to run the model with it;
 * the model then owns it (disposing the model disposes the adapter).
 */
export class AdapterModule {
  /** The adapter's parameters by full name (PEFT's tensor names without `base_model.model.`), in definition order. */
  readonly params: Map<string, tf.Variable>;
  /** The adapter's parameter specs. */
  readonly specs: ParameterSpec[];
  /** What the adapter does to the base model's linear layers. */
  readonly layer: AdapterLayer;

  /** The validated options. */
  readonly options: unknown;

  private constructor(
    readonly plugin: TensorAdapterPlugin<unknown>,
    options: Record<string, unknown>,
    baseSpecs: readonly ParameterSpec[],
    values: (spec: ParameterSpec) => Float32Array,
  ) {
    this.options = options = adapterOptions(plugin, options) as Record<string, unknown>;
    this.specs = plugin.parameters(baseSpecs, options);
    this.params = new Map(this.specs.map((s) => [s.name, tf.variable(tf.tensor(values(s), s.shape), true)]));
    this.layer = plugin.create(baseSpecs, options, (name) => {
      const v = this.params.get(name);
      if (!v)
        throw new YuanError(
          'adapter',
          `the ${plugin.name} adapter asked for ${name}, which it did not list as a parameter`,
        );
      return v;
    });
  }

  /**
   * A fresh adapter over a base model of `baseSpecs` (`modelParameters`), seeded per parameter as the model is
   * (`parameterSeed(seed, name)`), so the same seed gives the same adapter on every backend. `options` are merged over
   * the plugin's defaults and validated (a ConfigError naming the field).
   */
  static init(
    plugin: TensorAdapterPlugin<unknown>,
    options: Record<string, unknown>,
    baseSpecs: readonly ParameterSpec[],
    seed = 0,
  ): AdapterModule {
    return new AdapterModule(plugin, options, baseSpecs, (s) =>
      initValues(
        s.shape.reduce((a, b) => a * b, 1),
        s.init,
        new Rng(parameterSeed(seed, s.name)),
      ),
    );
  }

  /**
   * An adapter over given weights (by the names `plugin.parameters` lists): a missing or misshapen weight, or a weight
   * the adapter has no place for, is a YuanError 'adapter' naming it and `source`.
   */
  static fromWeights(
    plugin: TensorAdapterPlugin<unknown>,
    options: Record<string, unknown>,
    baseSpecs: readonly ParameterSpec[],
    weights: ReadonlyMap<string, Float32Array>,
    source = 'the adapter weights',
  ): AdapterModule {
    const specs = plugin.parameters(baseSpecs, adapterOptions(plugin, options));
    const known = new Set(specs.map((s) => s.name));
    const extra = [...weights.keys()].filter((n) => !known.has(n));
    if (extra.length) {
      const shown = `${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` (+${extra.length - 3} more)` : ''}`;
      throw new YuanError(
        'adapter',
        `${source} holds tensor${extra.length === 1 ? '' : 's'} ${shown} that the ${plugin.name} adapter with these options does not have (its options or the base model differ)`,
      );
    }
    return new AdapterModule(plugin, options, baseSpecs, (s) => {
      const w = weights.get(s.name);
      const size = s.shape.reduce((a, b) => a * b, 1);
      if (!w) throw new YuanError('adapter', `${source} have no ${s.name} (shape [${s.shape}])`);
      if (w.length !== size)
        throw new YuanError(
          'adapter',
          `${source}: ${s.name} has ${w.length} values; the base model and options imply [${s.shape}] = ${size}`,
        );
      return w;
    });
  }

  /** Scalar parameters of the adapter. */
  get parameterCount(): number {
    return countParameters(this.specs);
  }

  /** Current weights as float32 arrays by name. */
  async weights(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (await v.data()) as Float32Array);
    return out;
  }

  /**
   * The base weights (by fused name, as `YuanModel.weights()` or `readCheckpoint` give them) with this adapter merged
   * in: W + delta for every adapted weight, new arrays for those; the others are the same arrays. A weight it adapts
   * that `weights` lacks is an error.
   */
  merge(weights: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
    const out = new Map(weights);
    for (const name of this.layer.hooks.keys()) {
      const w = weights.get(name);
      if (!w) throw new YuanError('adapter', `cannot merge: the base weights have no ${name}`);
      const delta = this.layer.delta(name);
      const d = delta.dataSync() as Float32Array;
      delta.dispose();
      if (d.length !== w.length)
        throw new YuanError(
          'adapter',
          `cannot merge: ${name} has ${w.length} values, the adapter's update ${d.length}`,
        );
      const merged = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) merged[i] = w[i] + d[i];
      out.set(name, merged);
    }
    return out;
  }

  /** Frees the adapter's parameters. */
  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}
