import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { countParameters, YuanError } from '@yuan/core';
import { modelParameters, partParameters } from '@yuan/model';
import {
  assertFiniteStep,
  stepLearningRate,
  type CheckpointContents,
  type EngineFactory,
  type EngineSetup,
  type StepMetrics,
  type TrainingEngine,
} from '@yuan/train';
import { BatchLoader, PackedSplit, positionResetId, readPackedIndex, type Batch } from '@yuan/data';
import type { FromStage, MicroInput, Recompute, StageInit, StageStepReport, ToStage } from './protocol.js';
import { installedStageHooks } from './hooks.js';
import { chunksOf, partitionCosts, stagePrograms } from './schedule.js';
import type { PluginRegistry } from '@yuan/core';
import type { PassCosts } from '@yuan/plan';
import { threadWorld } from '@yuan/comm';
import { assembleCheckpoint, type StageState } from './checkpoint.js';

/** Options of the pipeline engine. */
export interface PipelineOptions {
  /** Pipeline stages P (one worker thread each). */
  stages: number;
  /** Micro-batches per optimizer step M (the global batch is M × train.microBatchSize sequences). */
  microbatches: number;
  /** `1f1b` (default) or `gpipe`. */
  schedule?: string;
  /** Where to look the schedule up (kind `schedule`). Default: `@yuan/plan`'s own schedules (`1f1b`, `gpipe`). */
  registry?: PluginRegistry;
  /** Layers per stage (length P, summing to the layer count); see `parsePartition`. */
  partition: number[];
  /**
   * One layer's pass times F, I, W (any unit, e.g. measured ms) for a schedule that orders work by each virtual stage's
   * own times (`zb-v-auto`): virtual stage v gets `partition[v]` times them. Default none: the schedule's equal-chunk
   * order.
   */
  layerCosts?: PassCosts;
  /** What a stage keeps between a forward and its backward (`Recompute`): `none` (default), `selective`, `full` or `stage`. */
  recompute?: Recompute;
  /**
   * Plugin modules (file URLs or absolute paths) each stage worker registers in its own registry, where it looks the
   * config's attention plugin and the setup's backend up (a worker cannot receive plugin objects). `@yuan/model` (`mha`)
   * and `@yuan/tensor` (the built-in backends) are always registered. Resolve the others where the package is a
   * dependency, e.g. `import.meta.resolve('@yuan/attention-lfa')`.
   */
  plugins?: string[];
  /** OpenBLAS threads per stage on the `native` backend (YUAN_NATIVE_THREADS in the worker). Default 1. */
  threadsPerStage?: number;
  /** Measure activation peaks with tf.profile (kernel-level high-water mark; slower). Default false: sampled per layer. */
  profileMemory?: boolean;
  /**
   * Milliseconds a stage waits for a silent neighbour stage before failing, naming it (a worker that dies is noticed
   * at once, without this). Default 600 000.
   */
  timeoutMs?: number;
}

/** The pipeline engine: a `TrainingEngine` plus each stage's memory and time of the last step. */
export interface PipelineEngine extends TrainingEngine {
  /** Per stage (index = stage) report of the last completed step. */
  readonly stageReports: StageStepReport[];
  /** Layers per stage. */
  readonly partition: number[];
}

/** Where the built worker entry is (dist/stage-worker.js beside dist/index.js; from source, the package's dist). */
function workerUrl(): URL {
  for (const rel of ['./stage-worker.js', '../../dist/stage-worker.js']) {
    const u = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(u))) return u;
  }
  throw new YuanError(
    'pipeline',
    'the stage worker (dist/stage-worker.js) is missing: build @yuan/parallel-pipeline first',
  );
}

/** One stage worker and its message queues; every wait also rejects when the worker fails or exits. */
class StageHandle {
  private readonly queues = new Map<string, FromStage[]>();
  private readonly waiters = new Map<string, { resolve: (m: FromStage) => void; reject: (e: Error) => void }>();
  failure?: Error;
  exited = false;
  /** The worker sent its own `failed` report. */
  private reported = false;

  constructor(
    readonly index: number,
    readonly worker: Worker,
    private readonly onFailure: (stage: number, reason: string) => void,
  ) {
    worker.on('message', (m: FromStage) => {
      if (m.type === 'failed') {
        this.reported = true;
        return this.onFailure(index, m.message);
      }
      const w = this.waiters.get(m.type);
      if (w) {
        this.waiters.delete(m.type);
        w.resolve(m);
      } else {
        const q = this.queues.get(m.type) ?? [];
        q.push(m);
        this.queues.set(m.type, q);
      }
    });
    worker.on('error', (e: Error & { code?: string }) => {
      this.onFailure(index, e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'ran out of memory' : e.message.split('\n')[0]);
    });
    worker.on('exit', (code) => {
      this.exited = true;
      // a worker that reported its failure exits right after: its report is the reason, not the exit
      if (!this.reported) this.onFailure(index, `its worker exited with code ${code}`);
    });
  }

  post(m: ToStage, transfer: ArrayBuffer[] = []): void {
    if (!this.failure) this.worker.postMessage(m, transfer);
  }

  expect<T extends FromStage['type']>(type: T): Promise<Extract<FromStage, { type: T }>> {
    if (this.failure) return Promise.reject(this.failure);
    const q = this.queues.get(type);
    if (q?.length) return Promise.resolve(q.shift() as Extract<FromStage, { type: T }>);
    return new Promise((resolve, reject) =>
      this.waiters.set(type, { resolve: resolve as (m: FromStage) => void, reject }),
    );
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.values()) w.reject(e);
    this.waiters.clear();
  }
}

/** A rank's fields of micro-batch `b`: positions always, ids where it holds the first stage, targets and mask where the last. */
export function microInput(b: Batch, first: boolean, last: boolean): MicroInput {
  return {
    rows: b.rows,
    seqLength: b.seqLength,
    positions: b.positions.slice(),
    ids: first ? b.ids.slice() : undefined,
    targets: last ? b.targets.slice() : undefined,
    mask: last ? b.mask.slice() : undefined,
  };
}

function transfers(inputs: MicroInput[]): ArrayBuffer[] {
  return inputs.flatMap((i) =>
    [i.positions, i.ids, i.targets, i.mask].filter((a) => a !== undefined).map((a) => a!.buffer as ArrayBuffer),
  );
}

class Pipeline implements PipelineEngine {
  step = 0;
  stageReports: StageStepReport[] = [];
  private failure?: Error;
  private phase = 'startup';
  private evalId = 0;
  private disposed = false;

  constructor(
    readonly handles: StageHandle[],
    readonly parameterCount: number,
    readonly partition: number[],
    private readonly setup: EngineSetup,
    private readonly options: Required<Pick<PipelineOptions, 'microbatches' | 'stages'>>,
    /** The rank holding each virtual stage. */
    private readonly placement: number[],
    private readonly loader: BatchLoader,
    private readonly closeData: () => void,
  ) {}

  /** Stops the whole pipeline after a stage failed: one message naming the stage and the step; all workers end. */
  fail(stage: number, reason: string): void {
    if (this.failure || this.disposed) return;
    // a stage that reports a neighbour lost ("rank N is lost", N = that stage in the pipeline's threads world) may
    // notice before the coordinator sees the neighbour's own failure: give that one a moment to report the cause
    const blamed = /rank (\d+) is lost/.exec(reason);
    if (blamed && Number(blamed[1]) !== stage && Number(blamed[1]) < this.handles.length) {
      this.deferred ??= setTimeout(() => this.failNow(stage, reason), 1000);
      return;
    }
    this.failNow(stage, reason);
  }

  private deferred?: NodeJS.Timeout;

  private failNow(stage: number, reason: string): void {
    if (this.failure || this.disposed) return;
    clearTimeout(this.deferred);
    this.failure = new YuanError('pipeline', `pipeline stage ${stage} failed ${this.phase}: ${reason}`);
    for (const h of this.handles) h.fail(this.failure);
    for (const h of this.handles) void h.worker.terminate();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private all<T extends FromStage['type']>(type: T): Promise<Extract<FromStage, { type: T }>[]> {
    return Promise.all(this.handles.map((h) => h.expect(type)));
  }

  /** Steps posted to the stages and not yet returned by `trainStep`: their token counts. */
  private readonly launched = new Map<number, number>();

  /**
   * Posts step `step` to every stage: its M micro-batches in the single process's data order. Under post-validation a
   * stage may return from it after its speculative update (`defer`), settling the decision later.
   */
  private launch(step: number): void {
    const { microbatches: m } = this.options;
    const batches = Array.from({ length: m }, () => this.loader.next());
    this.launched.set(
      step,
      batches.reduce((a, b) => a + b.rows * b.seqLength, 0),
    );
    const pl = this.placement;
    const lr = stepLearningRate(this.setup.train, step, this.setup.totalSteps);
    for (const [s, h] of this.handles.entries()) {
      const inputs = batches.map((b) => microInput(b, pl[0] === s, pl[pl.length - 1] === s));
      h.post({ type: 'step', step, inputs, lr, defer: this.setup.train.postValidate }, transfers(inputs));
    }
  }

  async trainStep(next?: { another: boolean }): Promise<StepMetrics> {
    this.check();
    const t0 = performance.now();
    const step = this.step + 1;
    this.phase = `at step ${step}`;
    if (!this.launched.has(step)) this.launch(step);
    // post-validation: no global synchronisation between steps (zero-bubble §5), so the next step goes out now and each
    // stage starts it as soon as it has done its own part of this one (the start of one step fills the other's drain)
    if (next?.another && this.setup.train.postValidate && !this.launched.has(step + 1)) this.launch(step + 1);
    const tokens = this.launched.get(step)!;
    this.launched.delete(step);
    const pl = this.placement;
    const norms = await this.all('norm');
    const loss = norms[pl[pl.length - 1]].loss!;
    const squared = norms.reduce((a, n) => a + n.squaredNorm, 0);
    const norm = Math.sqrt(squared);
    if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
      for (const h of this.handles) h.post({ type: 'discard' });
      await this.all('stepDone');
      assertFiniteStep(loss, norm, step);
    }
    const c = this.setup.train;
    const lr = stepLearningRate(c, step, this.setup.totalSteps);
    for (const h of this.handles) h.post({ type: 'update', lr, norm, clip: c.gradClip });
    this.stageReports = (await this.all('stepDone')).map((d) => d.report);
    this.step = step;
    const seconds = (performance.now() - t0) / 1000;
    const layerForwards = this.stageReports.reduce((a, r) => a + r.layerForwards, 0);
    return { step, loss, lr, gradNorm: norm, tokens, tokensPerSecond: tokens / seconds, seconds, layerForwards };
  }

  async evaluate(batches: readonly Batch[]): Promise<number> {
    this.check();
    if (batches.length === 0) return Number.NaN;
    this.phase = `in evaluation after step ${this.step}`;
    const id = ++this.evalId;
    const pl = this.placement;
    for (const [s, h] of this.handles.entries()) {
      const inputs = batches.map((b) => microInput(b, pl[0] === s, pl[pl.length - 1] === s));
      h.post({ type: 'eval', id, inputs }, transfers(inputs));
    }
    const done = await this.all('evalDone');
    const losses = done[pl[pl.length - 1]].losses!;
    return losses.reduce((a, b) => a + b, 0) / losses.length;
  }

  async checkpoint(): Promise<CheckpointContents> {
    this.check();
    this.phase = `while gathering the checkpoint of step ${this.step}`;
    for (const h of this.handles) h.post({ type: 'state' });
    const states: StageState[] = await this.all('state');
    return assembleCheckpoint(this.setup, states, this.step, this.loader.position());
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
    this.closeData();
  }
}

/**
 * The pipeline-parallel engine (Megatron's pipeline without interleaving, DeepSpeed's `PipelineEngine` as an
 * instruction interpreter): P stages on `worker_threads` workers, each with its own TensorFlow.js engine and backend
 * (`setup.backend`; `native` with `threadsPerStage` BLAS threads) and only its model part (first: embedding + its
 * layers; last: its layers + final norm + tied output projection + loss). The P workers are the P ranks of one `threads`
 * transport world: activations [B, T, H] (float32) and their gradients go between
 * neighbours over its tagged send/recv (`StageLinks`) as transferred ArrayBuffers. The coordinator (this thread) owns
 * the BatchLoader (the single-process data order, M micro-batches per step), sums the stages' squared gradient norms
 * (the tied embedding once), checks them for non-finite values before any update, and sends the lr; the first and
 * last stage sum their embedding gradients before the update. With one stage it computes the single-process trainer's
 * step. (With data parallelism, or across processes and hosts, one stage per rank with no coordinator, use
 * `pipelineRankEngine`; the CLI does for --dp/--transport or when launched as ranks.)
 * Errors: a bad partition or option (YuanError 'usage'); a stage that throws, exits or runs out of memory
 * stops the run with YuanError 'pipeline' naming the stage and the step, after terminating every worker.
 */
export function pipelineEngine(options: PipelineOptions): EngineFactory {
  return async (setup) => {
    const { stages: p, microbatches: m, partition } = options;
    const schedule = options.schedule ?? '1f1b';
    const layers = setup.config.model.numLayers;
    if (!(Number.isInteger(p) && p >= 1)) throw new YuanError('usage', `--pp must be a positive integer, got ${p}`);
    if (p > layers) throw new YuanError('usage', `--pp ${p} has more stages than the model's ${layers} layers`);
    if (!(Number.isInteger(m) && m >= 1)) throw new YuanError('usage', `--microbatches must be at least 1, got ${m}`);
    const stageCosts = partitionCosts(partition, options.layerCosts);
    const { programs, placement } = stagePrograms(schedule, p, m, options.registry, stageCosts);
    const chunks = Array.from({ length: p }, (_, s) => chunksOf(partition, placement, s, layers));
    const url = workerUrl();
    // test seam: hooks a test installed in this thread (the test-only `testing` entry) go to the workers too
    const hooks = installedStageHooks();
    const index = readPackedIndex(setup.data);
    const eod = positionResetId(index, setup.train, setup.data);
    const split = PackedSplit.open(setup.data, index, 'train');
    const loader = new BatchLoader(split, setup.train.seqLength, setup.train.microBatchSize, setup.seed, eod);
    if (setup.resume) loader.seek(setup.resume.data);
    const specs = modelParameters(setup.config, setup.attention);
    const handles: StageHandle[] = [];
    let engine: Pipeline | undefined;
    let early: { stage: number; reason: string } | undefined;
    const onFailure = (stage: number, reason: string) =>
      engine
        ? engine.fail(stage, reason)
        : ((early ??= { stage, reason }),
          handles.forEach((h) =>
            h.fail(new YuanError('pipeline', `pipeline stage ${stage} failed at startup: ${reason}`)),
          ));
    // the stages are the P ranks of one threads world: activations and gradients go over its tagged send/recv
    const world = threadWorld(p);
    for (let s = 0; s < p; s++) {
      const init: StageInit = {
        stage: s,
        stages: p,
        chunks: chunks[s],
        virtualStages: placement.length,
        placement,
        config: setup.config,
        train: setup.train,
        seed: setup.seed,
        backend: setup.backend,
        plugins: options.plugins ?? [],
        program: programs[s],
        recompute: options.recompute ?? 'none',
        microbatches: m,
        globalMicrobatches: m,
        profileMemory: options.profileMemory ?? false,
        hooks: hooks?.carry,
        timeoutMs: options.timeoutMs ?? 600_000,
      };
      const worker = new Worker(url, {
        workerData: { ...init, ...world[s].workerData },
        transferList: world[s].transferList,
        env: { ...process.env, YUAN_NATIVE_THREADS: String(options.threadsPerStage ?? 1) },
        resourceLimits: hooks?.workerLimits?.(s),
      });
      handles.push(new StageHandle(s, worker, (st, r) => onFailure(st, r)));
    }
    const V = placement.length;
    for (const [s, h] of handles.entries()) {
      if (setup.resume) {
        const names = [
          ...new Set(
            chunks[s].flatMap((c) =>
              partParameters(specs, {
                embedding: c.stage === 0,
                head: c.stage === V - 1,
                firstLayer: c.firstLayer,
                endLayer: c.endLayer,
              }).map((x) => x.name),
            ),
          ),
        ];
        const weights = names.map((n) => {
          const w = setup.resume!.weights.get(n);
          if (!w) throw new YuanError('checkpoint', `the checkpoint has no ${n}`);
          return [n, w.slice()] as [string, Float32Array];
        });
        const moments = names
          .flatMap((n) => ['m', 'v'].map((k) => `${k}.${n}`))
          .filter((k) => setup.resume!.optimizer.moments.has(k))
          .map((k) => [k, setup.resume!.optimizer.moments.get(k)!.slice()] as [string, Float32Array]);
        h.post(
          { type: 'init', weights, moments, optimizerStep: setup.resume.optimizer.step },
          [...weights, ...moments].map(([, a]) => a.buffer as ArrayBuffer),
        );
      } else h.post({ type: 'init' });
    }
    try {
      await Promise.all(handles.map((h) => h.expect('ready')));
    } catch (e) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      split.close();
      throw e;
    }
    engine = new Pipeline(
      handles,
      countParameters(specs),
      partition,
      setup,
      { microbatches: m, stages: p },
      placement,
      loader,
      () => split.close(),
    );
    if (setup.resume) engine.step = setup.resume.step;
    engine.step = setup.resume?.step ?? 0;
    void early;
    return engine;
  };
}
