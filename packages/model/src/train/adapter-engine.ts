import path from 'node:path';
import { YuanError, type YuanConfig } from '@yuan/core';
import type { TensorAdapterPlugin, TensorAttentionPlugin } from '@yuan/tensor';
import { AdapterModule, adapterOptions } from '../adapter/module.js';
import { ADAPTER_CONFIG, adapterFromFiles, readAdapterFiles, writeAdapterFiles } from '../adapter/peft.js';
import { YuanModel } from '../model.js';
import { modelParameters } from '../parameters.js';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex } from './data.js';
import type { EngineFactory } from './engine.js';
import type { StepMetrics } from './engine.js';
import type { WeightFiles } from './state.js';
import { Trainer } from './trainer.js';

/** What an adapter run trains: an adapter plugin with its options over a frozen base model. */
export interface AdapterTraining {
  plugin: TensorAdapterPlugin<unknown>;
  /** The adapter's options as the config gives them (`adapter.options`; merged over the plugin's defaults and validated). */
  options: Record<string, unknown>;
  /**
   * Reads the frozen base's weights by fused name (a checkpoint's, see `readCheckpoint`); called once when the engine
   * is built, and the arrays are let go once the model holds them. Default: the model initialised from the run's seed.
   */
  base?: () => Promise<Map<string, Float32Array>>;
  /** The base model's folder, recorded in adapter_config.json as `base_model_name_or_path` (null: none). */
  baseDir?: string | null;
}

/** A map whose `get` also removes the entry (the caller keeps what it took). */
class TakingMap extends Map<string, Float32Array> {
  override get(key: string): Float32Array | undefined {
    const v = super.get(key);
    this.delete(key);
    return v;
  }
}

/** A 32-bit mix of two integers (the dropout seed of a step). */
function mix(a: number, b: number): number {
  let h = Math.imul((a ^ 0x5bd1e995) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x27d4eb2f, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

/** The single-process trainer over an adapter: dropout on during a step's micro-batches, seeded by run seed and step. */
class AdapterTrainer extends Trainer {
  constructor(model: YuanModel, setup: Parameters<EngineFactory>[0], loader: BatchLoader, readonly adapter: AdapterModule) {
    super(model, setup.train, setup.totalSteps, loader, adapter);
    this.seed = setup.seed;
  }

  private readonly seed: number;

  override async trainStep(): Promise<StepMetrics> {
    this.adapter.layer.training(mix(this.seed, this.step + 1));
    try {
      return await super.trainStep();
    } finally {
      this.adapter.layer.training(undefined);
    }
  }
}

/**
 * The engine of an adapter run (LoRA fine-tuning): the single-process trainer with the base model frozen (its
 * weights get no gradients and no optimizer state) and only the adapter's parameters trained by AdamW. Checkpoints
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
    let model: YuanModel | undefined;
    try {
      if (t.base) {
        // each array is let go once the model's tensor holds it, so the base is not held twice while it loads
        model = YuanModel.fromWeights(setup.config, setup.attention, new TakingMap(await t.base()));
      } else {
        model = YuanModel.init(setup.config, setup.attention, setup.seed);
      }
      for (const v of model.params.values()) v.trainable = false;
      const specs = modelParameters(setup.config, setup.attention);
      const adapter = setup.resume
        ? AdapterModule.fromWeights(t.plugin, options, specs, setup.resume.weights, 'the checkpoint\'s adapter')
        : AdapterModule.init(t.plugin, options, specs, setup.seed);
      model.attachAdapter(adapter);
      const trainer = new AdapterTrainer(model, setup, new BatchLoader(split, setup.train.seqLength, setup.train.microBatchSize, setup.seed, eod), adapter);
      const owned = model;
      trainer.onDispose = () => {
        owned.dispose();
        split.close();
      };
      if (setup.resume) trainer.restore(setup.resume);
      return trainer;
    } catch (e) {
      model?.dispose();
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
export function adapterWeightFiles(t: AdapterTraining, config: YuanConfig, attention: TensorAttentionPlugin<unknown>): WeightFiles {
  const options = adapterOptions(t.plugin, t.options);
  const specs = modelParameters(config, attention);
  const adapterSpecs = t.plugin.parameters(specs, options);
  return {
    async write(folder, weights) {
      await writeAdapterFiles(folder, t.plugin, options, adapterSpecs, weights, t.baseDir ?? null);
    },
    async read(folder) {
      const files = await readAdapterFiles(folder, (type) => {
        if (type !== t.plugin.peftType) throw new YuanError('checkpoint', `${path.join(folder, ADAPTER_CONFIG)}: peft_type ${type}; this run trains a ${t.plugin.peftType} adapter (${t.plugin.name})`);
        return t.plugin;
      });
      const saved = adapterOptions(t.plugin, files.options);
      if (JSON.stringify(saved) !== JSON.stringify(options)) {
        throw new YuanError('checkpoint', `${folder} holds a ${t.plugin.name} adapter with options ${JSON.stringify(saved)}; this run's are ${JSON.stringify(options)}`);
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
