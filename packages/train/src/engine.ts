import type { YuanConfig } from '@yuan/core';
import type { TensorAttentionPlugin } from '@yuan/tensor';
import type { TrainConfig } from './config.js';
import type { Batch } from '@yuan/data';
import type { CheckpointContents } from './state.js';

/** What one optimizer step reports. */
export interface StepMetrics {
  step: number;
  /** Mean loss over the step's micro-batches (nats/token). */
  loss: number;
  lr: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  /** Tokens processed in this step (all micro-batches of the global batch). */
  tokens: number;
  tokensPerSecond: number;
  seconds: number;
  /**
   * Decoder-layer forwards this step ran (this rank's micro-batches; every stage of its pipeline): one per micro-batch
   * and layer, and one more for each layer a backward recomputed (`recompute: full`). Absent where not counted.
   */
  layerForwards?: number;
  /** Bytes this rank holds by kind (e.g. `optimizerBytes`, `gradientBytes`), where the engine measures them; logged to the metrics. */
  memory?: Record<string, number>;
}

/**
 * A training engine: how one optimizer step is computed. The single-process `Trainer` is one; the pipeline (P stages
 * on workers) and the data-parallel runtime (D ranks, ZeRO 0/1/2) are others. The training loop (`runTraining`) drives
 * any of them the same way: steps, validation, checkpoints, resume, metrics.
 */
export interface TrainingEngine {
  /** Completed optimizer steps. */
  readonly step: number;
  /** Scalar parameters of the whole model. */
  readonly parameterCount: number;
  /**
   * Whether this process writes metrics, checkpoints and progress (default true). In a multi-rank run only rank 0
   * does; the others still take part in `checkpoint()`, which may be collective.
   */
  readonly writer?: boolean;
  /**
   * One optimizer step over the global batch; a non-finite loss or gradient norm is an error naming the step.
   * `next.another`: the caller calls `trainStep` again right after this one, with no `evaluate` or `checkpoint`
   * between (the pipeline engine then starts that step before this one's global decision is in, under post-validation).
   */
  trainStep(next?: { another: boolean }): Promise<StepMetrics>;
  /** Mean loss over fixed evaluation batches (NaN when there are none). */
  evaluate(batches: readonly Batch[]): Promise<number>;
  /**
   * The whole model's weights, the optimizer state and the data position for a checkpoint. An engine whose optimizer
   * state is sharded across ranks has every rank write its shard into `shardDir` (`writeOptimizerShard`), waits for all
   * of them (a barrier), and returns `optimizer.shards` instead of whole moments; the writer then commits the checkpoint.
   */
  checkpoint(shardDir: string): Promise<CheckpointContents>;
  /**
   * Frees everything the engine holds (tensors, workers, sockets, open data files). `failure` is the error that ended
   * the run outside the engine (a checkpoint that could not be written, say): a multi-rank engine passes it to its peers
   * at once instead of waiting for them in a collective they will never reach.
   */
  dispose(failure?: Error): Promise<void>;
}

/** What an engine is built from. */
export interface EngineSetup {
  config: YuanConfig;
  train: TrainConfig;
  /** The attention plugin the config names. */
  attention: TensorAttentionPlugin<unknown>;
  /** The packed data folder (train split). */
  data: string;
  /** Seed of the initial weights and of the data order. */
  seed: number;
  /** Total steps of the run (the cosine decays to `minLr` there unless `decaySteps` is set). */
  totalSteps: number;
  /** Where to continue from (any layout: the contents are whole-model). */
  resume?: CheckpointContents;
  /** The tensor backend name, for engines that start their own workers. */
  backend?: string;
}

/** Builds an engine; the CLI picks one (single process, pipeline, data parallel) from its flags. */
export type EngineFactory = (setup: EngineSetup) => Promise<TrainingEngine>;
