import { countParameters, microbatchesPerRank, YuanError } from '@yuan/core';
import { modelParameters, partParameters } from '@yuan/model';
import {
  assertFiniteStep,
  stepLearningRate,
  writeOptimizerShard,
  type CheckpointContents,
  type EngineFactory,
  type StepMetrics,
} from '@yuan/train';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex, type Batch } from '@yuan/data';
import { gridPosition, type GridPosition, type ProcessGroup } from '@yuan/comm';
import type { ZeroStage } from '@yuan/parallel-zero';
import type { PluginRegistry } from '@yuan/core';
import type { TensorAttentionPlugin } from '@yuan/tensor';
import type { PassCosts } from '@yuan/plan';
import { gatherCheckpointToWriter } from './checkpoint.js';
import { microInput, type PipelineEngine } from './engine.js';
import { installedStageHooks } from './hooks.js';
import { StageLinks } from './links.js';
import type { Recompute, StageInit, StageStepReport } from './protocol.js';
import { chunksOf, partitionCosts, stagePrograms } from './schedule.js';
import { Stage, type StageDecision } from './stage.js';

/** Options of `pipelineRankEngine`. */
export interface PipelineRankOptions {
  /** One layer's F, I, W for a schedule ordered by each virtual stage's times (`zb-v-auto`); see `PipelineOptions`. */
  layerCosts?: PassCosts;
  /** The world: P × D ranks over one transport (`tcp` across processes and hosts, or `threads`). This process is `world.rank`. */
  world: ProcessGroup;
  /** Pipeline stages P. */
  stages: number;
  /** Data-parallel ranks D per stage (P × D must be the world size). Default world.size / P. */
  dataParallel?: number;
  /** Micro-batches of the whole step M (the global batch is M × train.microBatchSize sequences); D must divide it. */
  microbatches: number;
  /** Layers per stage (length P, summing to the layer count). */
  partition: number[];
  /** `1f1b` (default) or `gpipe` (or one in `registry`, kind `schedule`). */
  schedule?: string;
  registry?: PluginRegistry;
  /** What a stage keeps between a forward and its backward (`Recompute`): `none` (default), `selective`, `full` or `stage`. */
  recompute?: Recompute;
  /** ZeRO stage inside each stage's data-parallel group (D > 1): 0, 1 or 2. Default 0. */
  zero?: ZeroStage;
  /** Measure activation peaks with tf.profile. Default false. */
  profileMemory?: boolean;
}

/**
 * One rank of a P × D pipeline-parallel grid (Megatron's `initialize_model_parallel` with tensor parallel size 1):
 * global rank r is pipeline stage ⌊r / D⌋ and data-parallel rank r mod D, so stage s holds the D consecutive ranks
 * s·D … s·D + D − 1 (its data-parallel group) and the pipeline of data rank j is ranks j, D + j, …, (P − 1)·D + j.
 * This process runs only its stage (in this thread, on the backend already initialised) and there is no coordinator:
 * - every rank draws the step's M micro-batches from its own BatchLoader (the single-process order, same seed) and
 *   takes micro-batches j·M/D … (j+1)·M/D − 1; stage 0 feeds them ids, the last stage targets and mask;
 * - activations [B, T, H] go to the next stage and their gradients back over the world transport's tagged send/recv
 *   (`StageLinks`); the first and last stage of each pipeline add their tied-embedding gradients;
 * - each stage reduces its gradients in its data-parallel group (ZeRO 0/1/2, as `Stage`);
 * - the loss (last stage, weighted 1/M) and the squared gradient norm of every rank are summed by one all-reduce over
 *   the world, so every rank gets the global loss and norm, checks them for non-finite values, and computes the same lr
 *   and clipping before any update;
 * - validation: each data rank takes batches i ≡ j (mod D), the last stages' loss sums are all-reduced over the world;
 * - checkpoints: under ZeRO 1/2 every rank writes its optimizer shard file and a world barrier follows; the stages'
 *   weights (and, under ZeRO 0, moments) are gathered to rank 0 (stage 0, data rank 0), the writer, which commits the
 *   checkpoint (`gatherCheckpointToWriter`); the other ranks return contents without weights.
 * With P × D = 1 it computes the single-process trainer's step. Errors: a world size that is not P × D, D not dividing
 * M, a bad partition (YuanError 'usage', the same line on every rank); a failure of this rank aborts the transport so
 * its peers stop at once naming it; a lost or silent peer is YuanError 'pipeline' naming this stage, the step and the
 * lost rank (from the transport's PeerLostError / PeerTimeoutError).
 */
export function pipelineRankEngine(options: PipelineRankOptions): EngineFactory {
  return async (setup) => {
    const { world, stages: p, microbatches: m, partition } = options;
    const layers = setup.config.model.numLayers;
    if (!(Number.isInteger(p) && p >= 1)) throw new YuanError('usage', `--pp must be a positive integer, got ${p}`);
    if (p > layers) throw new YuanError('usage', `--pp ${p} has more stages than the model's ${layers} layers`);
    const d = options.dataParallel ?? world.size / p;
    if (!Number.isInteger(d) || d < 1 || p * d !== world.size) {
      throw new YuanError(
        'usage',
        `the world has ${world.size} ranks but --pp ${p} × --dp ${options.dataParallel ?? '?'} needs ${options.dataParallel ? p * options.dataParallel : `a multiple of ${p}`}: WORLD_SIZE must be P × D`,
      );
    }
    if (!(Number.isInteger(m) && m >= 1)) throw new YuanError('usage', `--microbatches must be at least 1, got ${m}`);
    microbatchesPerRank(m, d);
    const pos = gridPosition(world.rank, p, d);
    const local = m / d;
    const { programs, placement } = stagePrograms(
      options.schedule ?? '1f1b',
      p,
      local,
      options.registry,
      partitionCosts(partition, options.layerCosts),
    );
    const program = programs[pos.stage];
    const chunks = chunksOf(partition, placement, pos.stage, layers);
    const V = placement.length;
    const zero = options.zero ?? 0;
    const init: StageInit = {
      stage: pos.stage,
      stages: p,
      chunks,
      virtualStages: V,
      placement,
      config: setup.config,
      train: setup.train,
      seed: setup.seed,
      backend: setup.backend,
      plugins: [],
      program,
      recompute: options.recompute ?? 'none',
      microbatches: local,
      globalMicrobatches: m,
      // the group is given (a subgroup of the world); the tcp fields are the worker path's and unused here
      dataParallel: d > 1 ? { rank: pos.dataRank, size: d, zero } : undefined,
      profileMemory: options.profileMemory ?? false,
      timeoutMs: 0,
    };
    const specs = modelParameters(setup.config, setup.attention);
    const parts = chunks.map((c) => ({
      embedding: c.stage === 0,
      head: c.stage === V - 1,
      firstLayer: c.firstLayer,
      endLayer: c.endLayer,
    }));
    let weights: Map<string, Float32Array> | undefined;
    if (setup.resume) {
      weights = new Map(
        parts
          .flatMap((part) => partParameters(specs, part))
          .map((x) => {
            const w = setup.resume!.weights.get(x.name);
            if (!w) throw new YuanError('checkpoint', `the checkpoint has no ${x.name}`);
            return [x.name, w];
          }),
      );
    }
    const pipe = world.subgroup(pos.pipelineRanks);
    const dataGroup = d > 1 ? world.subgroup(pos.dataParallelRanks) : undefined;
    const stage = new Stage(
      init,
      setup.attention as TensorAttentionPlugin<unknown>,
      p > 1 ? new StageLinks(pipe, pos.stage, p) : undefined,
      weights,
      dataGroup,
      installedStageHooks(),
    );
    if (setup.resume) {
      const moments = new Map(
        [...weights!.keys()]
          .flatMap((n) => ['m', 'v'].map((k) => `${k}.${n}`))
          .filter((k) => setup.resume!.optimizer.moments.has(k))
          .map((k) => [k, setup.resume!.optimizer.moments.get(k)!]),
      );
      stage.restore(moments, setup.resume.optimizer.step);
    }
    const index = readPackedIndex(setup.data);
    const split = PackedSplit.open(setup.data, index, 'train');
    const loader = new BatchLoader(
      split,
      setup.train.seqLength,
      setup.train.microBatchSize,
      setup.seed,
      positionResetId(index, setup.train, setup.data),
    );
    if (setup.resume) loader.seek(setup.resume.data);
    const engine = new PipelineRank(
      world,
      pos,
      p,
      d,
      m,
      stage,
      loader,
      () => split.close(),
      setup,
      partition,
      countParameters(specs),
      placement[0] === pos.stage,
      placement[V - 1] === pos.stage,
    );
    engine.step = setup.resume?.step ?? 0;
    return engine;
  };
}

class PipelineRank implements PipelineEngine {
  step = 0;
  stageReports: StageStepReport[] = [];
  private phase = 'at startup';
  private failed = false;
  private evalId = 0;

  constructor(
    private readonly world: ProcessGroup,
    private readonly pos: GridPosition,
    private readonly p: number,
    private readonly d: number,
    private readonly m: number,
    private readonly stage: Stage,
    private readonly loader: BatchLoader,
    private readonly closeData: () => void,
    private readonly setup: Parameters<EngineFactory>[0],
    readonly partition: number[],
    readonly parameterCount: number,
    /** Whether this rank holds the first / the last (virtual) stage: it reads the ids / the targets. */
    private readonly holdsFirst: boolean,
    private readonly holdsLast: boolean,
  ) {}

  /** Global rank 0 (stage 0, data rank 0) writes metrics and checkpoints. */
  get writer(): boolean {
    return this.world.rank === 0;
  }

  /** Runs `f`; a failure names this stage, rank and phase, and aborts the transport so every peer stops at once. */
  private async guard<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof YuanError && (e.code === 'nan' || e.code === 'usage')) throw e;
      this.failed = true;
      const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
      const where = `pipeline stage ${this.pos.stage}${this.d > 1 ? ` of data-parallel rank ${this.pos.dataRank}` : ''} (rank ${this.world.rank})`;
      const err = new YuanError('pipeline', `${where} failed ${this.phase}: ${msg}`);
      // peers learn the root cause: a lost rank stays the lost rank (its PeerLostError), else this rank
      this.world.abort(e instanceof Error && typeof (e as { rank?: unknown }).rank === 'number' ? e : err);
      throw err;
    }
  }

  /** Steps started and not yet returned by `trainStep`: their metrics (a rejection is kept for that call). */
  private readonly started = new Map<number, Promise<Omit<StepMetrics, 'seconds' | 'tokensPerSecond'>>>();
  /** This rank's stage work: a step starts on the stage after the one before it has returned there. */
  private chain: Promise<unknown> = Promise.resolve();

  /**
   * Starts step `step` on this rank's stage once the step before it has returned there: draws its micro-batches (the
   * single process's order), runs the stage's instruction list and the all-reduce of loss and squared norm that decides
   * the update. Under post-validation (no data parallelism) the stage returns after its speculative update, so the
   * next step may start before this one's decision.
   */
  private begin(step: number): void {
    // the single process's data order: the step's M micro-batches, of which this data rank takes j·M/D … (j+1)·M/D − 1
    const all: Batch[] = Array.from({ length: this.m }, () => this.loader.next());
    const tokens = all.reduce((a, b) => a + b.rows * b.seqLength, 0);
    const local = this.m / this.d;
    const inputs = all
      .slice(this.pos.dataRank * local, (this.pos.dataRank + 1) * local)
      .map((b) => microInput(b, this.holdsFirst, this.holdsLast));
    const lr = stepLearningRate(this.setup.train, step, this.setup.totalSteps);
    let loss = Number.NaN;
    let norm = Number.NaN;
    let layerForwards = 0;
    let decided!: () => void;
    const decision = new Promise<void>((resolve) => (decided = resolve));
    const defer = this.setup.train.postValidate && this.d === 1;
    const done = this.chain.then(() => {
      this.phase = `at step ${step}`;
      return this.guard(async () => {
        await this.stage.trainStep(
          step,
          inputs,
          lr,
          async (mine): Promise<StageDecision> => {
            // every rank's loss part (last stages) and squared norm part, summed over the world before any update
            const r = await this.world.allReduce(
              new Float32Array([mine.loss ?? 0, mine.squaredNorm, mine.layerForwards ?? 0]),
            );
            loss = r[0];
            norm = Math.sqrt(r[1]);
            layerForwards = Math.round(r[2]);
            decided();
            if (!Number.isFinite(loss) || !Number.isFinite(norm)) return { type: 'discard' };
            return { type: 'update', lr, norm, clip: this.setup.train.gradClip };
          },
          defer,
        );
        // this step's report, before the next step on this stage replaces it
        return this.stage.lastReport;
      });
    });
    this.chain = done.catch(() => undefined);
    const metrics = Promise.all([done, decision]).then(([report]) => {
      assertFiniteStep(loss, norm, step);
      // this rank's own stage (rank 0 writes the metrics: stage 0 of data rank 0)
      const memory = {
        optimizerBytes: report.optimizerBytes,
        gradientBytes: report.gradientBytes,
        ...(report.gradientInFlightBytes ? { gradientInFlightBytes: report.gradientInFlightBytes } : {}),
        activationPeakBytes: report.activationPeakBytes,
      };
      // this rank holds only its own stage's report (index = stage; the other entries are empty)
      this.stageReports = [];
      this.stageReports[this.pos.stage] = report;
      return { step, loss, lr, gradNorm: norm, tokens, layerForwards, memory };
    });
    metrics.catch(() => undefined); // awaited by this step's trainStep call; not an unhandled rejection meanwhile
    this.started.set(step, metrics);
  }

  async trainStep(next?: { another: boolean }): Promise<StepMetrics> {
    const t0 = performance.now();
    const step = this.step + 1;
    this.phase = `at step ${step}`;
    if (!this.started.has(step)) this.begin(step);
    // post-validation without data parallelism: no global synchronisation between steps (zero-bubble §5), so the next
    // step starts on this stage as soon as this one's own part is done (the start-up of one fills the other's drain)
    if (next?.another && this.setup.train.postValidate && this.d === 1 && !this.started.has(step + 1))
      this.begin(step + 1);
    const metrics = this.started.get(step)!;
    this.started.delete(step);
    const m = await metrics;
    this.step = step;
    const seconds = (performance.now() - t0) / 1000;
    return { ...m, seconds, tokensPerSecond: m.tokens / seconds };
  }

  async evaluate(batches: readonly Batch[]): Promise<number> {
    if (batches.length === 0) return Number.NaN;
    this.phase = `in evaluation after step ${this.step}`;
    const id = ++this.evalId;
    const mine = batches
      .filter((_, i) => i % this.d === this.pos.dataRank)
      .map((b) => microInput(b, this.holdsFirst, this.holdsLast));
    return this.guard(async () => {
      const losses = await this.stage.evaluate(id, mine);
      const sum = (losses ?? []).reduce((a, b) => a + b, 0);
      const total = await this.world.allReduce(new Float32Array([sum]));
      return total[0] / batches.length;
    });
  }

  async checkpoint(shardDir: string): Promise<CheckpointContents> {
    this.phase = `while writing the checkpoint of step ${this.step}`;
    return this.guard(async () => {
      const sharded = this.stage.sharded;
      if (sharded) {
        // ZeRO 1/2: every rank writes its own optimizer shard; after the barrier all of them are durable
        const shard = await this.stage.shardState();
        await writeOptimizerShard(shardDir, { index: this.world.rank, count: this.world.size, ...shard });
        await this.world.barrier();
      }
      const state = await this.stage.state(); // weights (and, unsharded, the moments)
      const stageRanks = Array.from({ length: this.p }, (_, s) => s * this.d);
      const whole = await gatherCheckpointToWriter(
        this.world,
        stageRanks,
        state,
        this.setup,
        this.step,
        this.loader.position(),
      );
      if (whole && sharded) whole.optimizer.shards = this.world.size;
      // not the writer: the loop saves nothing here, so the contents carry no weights
      return (
        whole ?? {
          step: this.step,
          weights: new Map(),
          optimizer: { step: state.optimizerStep, moments: new Map() },
          data: this.loader.position(),
        }
      );
    });
  }

  async dispose(failure?: Error): Promise<void> {
    if (failure && !this.failed) {
      // the run failed outside the engine (e.g. rank 0 could not write a checkpoint): tell the peers now
      this.failed = true;
      this.world.abort(new YuanError('pipeline', `rank ${this.world.rank} stopped: ${failure.message.split('\n')[0]}`));
    }
    if (!this.failed) {
      // every rank has finished its last exchange before any rank closes the world
      this.phase = 'at the end of the run';
      await this.guard(() => this.world.barrier()).catch(() => {});
    }
    this.stage.dispose();
    this.closeData();
  }
}
