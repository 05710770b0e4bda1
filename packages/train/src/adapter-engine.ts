import path from 'node:path';
import { YuanError, type YuanConfig } from '@yuan/core';
import {
  loadDecodeKernels,
  recordTape,
  tf,
  type KeptTape,
  type TensorAdapterPlugin,
  type TensorAttentionPlugin,
} from '@yuan/tensor';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex, type Batch } from '@yuan/data';
import {
  ADAPTER_CONFIG,
  adapterFromFiles,
  AdapterModule,
  adapterOptions,
  crossEntropy,
  modelParameters,
  readAdapterFiles,
  writeAdapterFiles,
  YuanModel,
  type InferenceWeights,
} from '@yuan/model';
import type { EngineFactory } from './engine.js';
import { accumulateGrads, disposeGrads, microBatchGrads, type GradMap } from './grads.js';
import type { LayerRecompute } from './layer-range.js';
import { LayeredModel } from './layerwise.js';
import type { WeightFiles } from './state.js';
import { batchLoss, Trainer } from './trainer.js';

/** What an adapter run trains: an adapter plugin with its options over a frozen base model. */
export interface AdapterTraining {
  plugin: TensorAdapterPlugin<unknown>;
  /** The adapter's options as the config gives them (`adapter.options`; merged over the plugin's defaults and validated). */
  options: Record<string, unknown>;
  /**
   * Reads the frozen base's weights by fused name (a checkpoint's, see `readCheckpoint`); called once when the engine
   * is built, and each array is taken out of the map (`get`, then `delete`) as the model takes it, so the base is not
   * held twice. Default: the model initialised from the run's seed.
   */
  base?: () => Promise<Map<string, Float32Array>>;
  /**
   * The frozen base in its weight formats instead (QLoRA-style: bf16, int8 or int4 linears stay packed and their
   * products run on the packed data, `YuanModel.fromStoredWeights`; the embedding, norms and convolutions are float32).
   * Excludes `base`; with `recompute` the packed base is held one part per layer (`LayeredModel.fromStoredWeights`).
   */
  storedBase?: () => Promise<InferenceWeights>;
  /** The base model's folder, recorded in adapter_config.json as `base_model_name_or_path` (null: none). */
  baseDir?: string | null;
  /**
   * What the forward keeps for the backward. `true` or `'full'`: recompute each layer's forward inside the backward
   * (Megatron's full recompute): only each layer's input [B, T, H] is kept through a step, for one more forward pass per
   * step. `'none'` (or `'selective'`, the same with the op-by-op attention core's scores recomputed): the model held one
   * part per layer, each layer's forward recorded once on a kept tape (`recordTape` with the layer's input and adapter
   * parameters as its xs, so a frozen linear keeps no input for a weight gradient it never gets) and backpropagated
   * layer by layer; no forward runs twice. `false` (default): the whole model on one TensorFlow.js tape. The losses are
   * the same in every mode (dropout masks are drawn alike).
   */
  recompute?: boolean | LayerRecompute;
}

/** A view of a map whose `get` also removes the entry from it (the caller keeps what it took). */
class TakingMap extends Map<string, Float32Array> {
  constructor(private readonly source: Map<string, Float32Array>) {
    super();
  }

  override get(key: string): Float32Array | undefined {
    const v = this.source.get(key);
    this.source.delete(key);
    return v;
  }
}

/** A 32-bit mix of two integers (the dropout seed of a step). */
function mix(a: number, b: number): number {
  let h = Math.imul((a ^ 0x5bd1e995) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x27d4eb2f, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * The single-process trainer over an adapter. Dropout is on for the micro-batches of a step only, and micro-batch i
 * of step s draws its masks from mix(mix(run seed, s), i), whichever engine computes it (so recomputing layers, or
 * resuming, gives the same losses).
 */
class AdapterTrainer extends Trainer {
  constructor(
    model: YuanModel,
    setup: Parameters<EngineFactory>[0],
    loader: BatchLoader,
    readonly adapter: AdapterModule,
  ) {
    super(model, setup.train, setup.totalSteps, loader, adapter);
    this.runSeed = setup.seed;
  }

  private readonly runSeed: number;

  /** Loss and gradients of the adapter's parameters for one micro-batch whose dropout seed is `seed`. */
  protected microBatch(batch: Batch, seed: number): { loss: number; grads: GradMap } {
    this.adapter.layer.training(seed);
    const r = microBatchGrads(this.adapter.params, () => batchLoss(this.model, batch, this.config.resetPositionIds));
    const loss = r.loss.dataSync()[0];
    r.loss.dispose();
    return { loss, grads: r.grads };
  }

  override async accumulatedGrads(): Promise<{ loss: number; grads: GradMap; tokens: number }> {
    const k = this.config.gradAccumulation;
    const stepSeed = mix(this.runSeed, this.step + 1);
    let grads: GradMap | undefined;
    let loss = 0;
    let tokens = 0;
    try {
      for (let i = 0; i < k; i++) {
        const batch = this.loader.next();
        const r = this.microBatch(batch, mix(stepSeed, i));
        loss += r.loss / k;
        grads = accumulateGrads(grads, r.grads, 1 / k);
        tokens += batch.rows * batch.seqLength;
      }
    } catch (e) {
      disposeGrads(grads);
      throw e;
    } finally {
      this.adapter.layer.training(undefined);
    }
    return { loss, grads: grads!, tokens };
  }
}

/**
 * A micro-batch's loss and the gradients of the adapter's parameters, layer by layer. Under `full` the forward keeps
 * only each layer's input, then the head's gradient for the last hidden states, then for layer L−1 … 0 its forward
 * again under the tape (`redraw` first, so dropout draws the forward's masks) and the gradients of its input and of
 * the adapter's parameters in that layer. Under `none`/`selective` each layer's forward is recorded once on a kept
 * tape whose xs are its input and its adapter parameters (`recordTape`), so the tape keeps only what those gradients
 * read — no input of a frozen linear for a weight gradient — and the backward runs the tapes from the last layer.
 * The frozen base gets no gradient anywhere.
 */
function layerwiseAdapterGrads(
  layered: LayeredModel,
  batch: Batch,
  resetPositions: boolean,
  byLayer: Array<Array<[string, tf.Variable]>>,
  redraw: () => void,
  mode: LayerRecompute,
): { loss: number; grads: GradMap } {
  const shape: [number, number] = [batch.rows, batch.seqLength];
  const ids = tf.tensor2d(batch.ids, shape, 'int32');
  const positions = resetPositions ? tf.tensor2d(batch.positions, shape, 'int32') : undefined;
  const targets = tf.tensor2d(batch.targets, shape, 'int32');
  const mask = tf.tensor2d(batch.mask, shape);
  const inputs: tf.Tensor3D[] = [];
  const tapes: KeptTape[] = [];
  const grads: GradMap = new Map();
  const kept = mode !== 'full';
  let dy: tf.Tensor | undefined;
  try {
    redraw();
    let x = layered.ends!.embed(ids);
    for (const [l, layer] of layered.layers.entries()) {
      if (!kept) {
        inputs.push(x);
        x = layer.layers(x, { positions }).hidden;
        continue;
      }
      const from = x;
      const vars = byLayer[l].map(([, v]) => v);
      const tape = recordTape(() => layer.layers(from, { positions }).hidden, [from, ...vars], {
        selective: mode === 'selective',
        prune: true,
      });
      tapes.push(tape);
      x = tape.value as tf.Tensor3D;
      from.dispose(); // the tape holds what its backward reads
    }
    inputs.push(x);
    const h = x;
    const head = tf.engine().gradients(() => crossEntropy(layered.ends!.head(h), targets, mask), [h]);
    const loss = head.value.dataSync()[0];
    head.value.dispose();
    dy = head.grads[0];
    for (let l = layered.layers.length - 1; l >= 0; l--) {
      const vars = byLayer[l];
      const upstream: tf.Tensor = dy;
      let r: Array<tf.Tensor | undefined>;
      if (kept) {
        r = tapes[l].backward(upstream);
        tapes[l].dispose();
        if (!r[0]) r[0] = tf.zeros(tapes[l].value.shape);
      } else {
        redraw();
        const input = inputs[l];
        const g: { value: tf.Tensor; grads: tf.Tensor[] } = tf
          .engine()
          .gradients(
            () => layered.layers[l].layers(input, { positions }).hidden,
            [input, ...vars.map(([, v]) => v)],
            upstream,
            true,
          );
        g.value.dispose();
        r = g.grads;
      }
      upstream.dispose();
      dy = r[0]!;
      vars.forEach(([name, v], i) => grads.set(name, r[i + 1] ?? tf.zerosLike(v)));
    }
    return { loss, grads };
  } catch (e) {
    disposeGrads(grads);
    throw e;
  } finally {
    dy?.dispose();
    for (const t of tapes) t.dispose();
    tf.dispose([...inputs, ids, targets, mask, ...(positions ? [positions] : [])]);
  }
}

/**
 * The adapter trainer over a model held one part per layer: each layer's forward recomputed in the backward (`full`),
 * or recorded once on a kept tape (`none`/`selective`).
 */
class RecomputingAdapterTrainer extends AdapterTrainer {
  private readonly byLayer: Array<Array<[string, tf.Variable]>>;

  constructor(
    readonly layered: LayeredModel,
    setup: Parameters<EngineFactory>[0],
    loader: BatchLoader,
    adapter: AdapterModule,
    private readonly mode: LayerRecompute,
  ) {
    super(layered.ends!, setup, loader, adapter);
    this.byLayer = layered.layers.map((_, l) =>
      [...adapter.params].filter(([n]) => n.startsWith(`model.layers.${l}.`)),
    );
  }

  protected override microBatch(batch: Batch, seed: number): { loss: number; grads: GradMap } {
    return layerwiseAdapterGrads(
      this.layered,
      batch,
      this.config.resetPositionIds,
      this.byLayer,
      () => this.adapter.layer.training(seed),
      this.mode,
    );
  }

  override async evaluate(batches: readonly Batch[]): Promise<number> {
    if (batches.length === 0) return Number.NaN;
    let sum = 0;
    for (const b of batches) {
      const l = this.layered.loss(b, this.config.resetPositionIds);
      sum += (await l.data())[0];
      l.dispose();
    }
    return sum / batches.length;
  }
}

/**
 * The engine of an adapter run (LoRA fine-tuning): the single-process trainer with the base model frozen (its
 * weights get no gradients and no optimizer state) and only the adapter's parameters trained by AdamW; with
 * `recompute`, the model is held one part per layer and each layer's forward runs again in the backward. Checkpoints
 * hold the adapter (see `adapterWeightFiles`), and a resumed run starts from the adapter and moments they hold. With
 * dropout, a step's masks come from the run's seed and the step number, so a resumed run gives the same losses as an
 * uninterrupted one.
 */
export function adapterEngine(t: AdapterTraining): EngineFactory {
  return async (setup) => {
    const options = adapterOptions(t.plugin, t.options) as Record<string, unknown>;
    const index = readPackedIndex(setup.data);
    const eod = positionResetId(index, setup.train, setup.data);
    const split = PackedSplit.open(setup.data, index, 'train');
    let model: { params: Map<string, tf.Variable>; dispose(): void } | undefined;
    let adapter: AdapterModule | undefined;
    try {
      if (t.storedBase && t.base)
        throw new YuanError(
          'usage',
          'an adapter run takes its base as float32 weights or in its weight formats, not both',
        );
      // each base array is let go once the model's tensor holds it, so the base is not held twice while it loads
      const weights = t.base ? new TakingMap(await t.base()) : undefined;
      const { config, attention, seed } = setup;
      const specs = modelParameters(config, attention);
      adapter = setup.resume
        ? AdapterModule.fromWeights(t.plugin, options, specs, setup.resume.weights, "the checkpoint's adapter")
        : AdapterModule.init(t.plugin, options, specs, seed);
      const loader = new BatchLoader(split, setup.train.seqLength, setup.train.microBatchSize, seed, eod);
      let trainer: AdapterTrainer;
      if (t.storedBase) await loadDecodeKernels(); // the packed products use the native weight kernels where built
      const mode: LayerRecompute | undefined =
        t.recompute === true ? 'full' : t.recompute === false ? undefined : t.recompute;
      if (t.storedBase && !mode) {
        const whole = YuanModel.fromStoredWeights(config, attention, await t.storedBase());
        model = whole;
        whole.attachAdapter({ layer: adapter.layer, dispose() {} });
        trainer = new AdapterTrainer(whole, setup, loader, adapter);
      } else if (mode) {
        const layered = t.storedBase
          ? LayeredModel.fromStoredWeights(config, attention, await t.storedBase())
          : weights
            ? LayeredModel.fromWeights(config, attention, weights)
            : LayeredModel.init(config, attention, seed);
        model = layered;
        // every part runs its layers through the adapter; the engine, not the parts, owns it
        const view = { layer: adapter.layer, dispose() {} };
        for (const part of [layered.ends!, ...layered.layers]) part.attachAdapter(view);
        trainer = new RecomputingAdapterTrainer(layered, setup, loader, adapter, mode);
      } else {
        const whole = weights
          ? YuanModel.fromWeights(config, attention, weights)
          : YuanModel.init(config, attention, seed);
        model = whole;
        whole.attachAdapter({ layer: adapter.layer, dispose() {} });
        trainer = new AdapterTrainer(whole, setup, loader, adapter);
      }
      for (const v of model.params.values()) v.trainable = false;
      const owned = { model, adapter };
      trainer.onDispose = () => {
        owned.model.dispose();
        owned.adapter.dispose();
        split.close();
      };
      if (setup.resume) trainer.restore(setup.resume);
      return trainer;
    } catch (e) {
      model?.dispose();
      adapter?.dispose();
      split.close();
      throw e;
    }
  };
}

/**
 * The checkpoint files of an adapter run: PEFT's adapter_config.json and adapter_model.safetensors (so a checkpoint
 * folder is itself an adapter that `generate --peft`, `yuan adapter merge` and PEFT load). Reading checks that the
 * checkpoint's adapter has this run's options (a YuanError 'checkpoint' naming the difference otherwise).
 */
export function adapterWeightFiles(
  t: AdapterTraining,
  config: YuanConfig,
  attention: TensorAttentionPlugin<unknown>,
): WeightFiles {
  const options = adapterOptions(t.plugin, t.options);
  const specs = modelParameters(config, attention);
  const adapterSpecs = t.plugin.parameters(specs, options);
  return {
    async write(folder, weights) {
      await writeAdapterFiles(folder, t.plugin, options, adapterSpecs, weights, t.baseDir ?? null);
    },
    async read(folder) {
      const files = await readAdapterFiles(folder, (type) => {
        if (type !== t.plugin.peftType)
          throw new YuanError(
            'checkpoint',
            `${path.join(folder, ADAPTER_CONFIG)}: peft_type ${type}; this run trains a ${t.plugin.peftType} adapter (${t.plugin.name})`,
          );
        return t.plugin;
      });
      const saved = adapterOptions(t.plugin, files.options);
      if (JSON.stringify(saved) !== JSON.stringify(options)) {
        throw new YuanError(
          'checkpoint',
          `${folder} holds a ${t.plugin.name} adapter with options ${JSON.stringify(saved)}; this run's are ${JSON.stringify(options)}`,
        );
      }
      const adapter = adapterFromFiles(files, specs, path.join(folder, ADAPTER_CONFIG));
      try {
        return await adapter.weights();
      } finally {
        adapter.dispose();
      }
    },
  };
}
