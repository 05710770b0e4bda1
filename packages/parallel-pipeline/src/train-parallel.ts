import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPluginModule, PluginRegistry, resolvePluginModule, YuanError, type YuanConfig } from '@yuan/core';
import { attentionLookup, modelParameters } from '@yuan/model';
import {
  checkTrainingData,
  runTraining,
  singleProcessEngine,
  type EngineFactory,
  type RunOptions,
  type RunResult,
  type LayerRecompute,
} from '@yuan/train';
import {
  createProcessGroup,
  launchLocal,
  rankFromEnvironment,
  spawnThreadRanks,
  type ProcessGroup,
  type RankInfo,
  type TransportPlugin,
} from '@yuan/comm';
import { dataParallelEngine } from '@yuan/parallel-zero';
import {
  fieldNames,
  getSchedule,
  groupParameters,
  parallelLayout,
  partitionLayers,
  planPipeline,
  withParallelLayout,
  type LayoutNaming,
  type ParallelLayout,
} from '@yuan/plan';
import { initBackend } from '@yuan/tensor';
import { pipelineEngine } from './runtime/engine.js';
import { pipelineRankEngine } from './runtime/rank.js';

/** A plugin module a rank imports to rebuild the registry (plugin objects cannot cross threads or processes). */
export interface PluginModuleRef {
  /** The specifier the plugins were registered under (their source: a package name or an absolute path). */
  spec: string;
  /** The module's file, resolved where the registry was built. */
  file: string;
}

/** The sources (registry `sourceOf`) of the attention and backend plugins the stage workers of a run use, known ones only. */
function stageModuleSources(registry: PluginRegistry, attention: string, backend: string | undefined): string[] {
  const used: [string, string | undefined][] = [
    ['attention', attention],
    ['backend', backend],
  ];
  const sources = used
    .filter(([kind, name]) => name !== undefined && registry.has(kind, name))
    .map(([kind, name]) => registry.sourceOf(kind, name!));
  return [...new Set(sources)].filter((s) => s !== 'unknown');
}

/** Options of `parallelEngine`. */
export interface ParallelEngineOptions {
  /**
   * The world when this process (or thread) is one rank of P × D ranks (`trainParallel` makes it): the engine runs this
   * rank's stage (P > 1) or its data-parallel share (P = 1). Without it the whole layout runs in this process, which
   * allows D = 1 only: the single-process trainer, or with P > 1 one worker thread per stage.
   */
  world?: ProcessGroup;
  /** How errors and notes name the layout's fields. */
  naming?: LayoutNaming;
  /** Receives notes (M < P: the pipeline never fills). */
  onNote?: (text: string) => void;
  /**
   * Plugin module files the stage worker threads register (P > 1 without a world; `@yuan/model` and `@yuan/tensor` are
   * always there). Default: the modules the registry has the config's attention plugin and the setup's backend from,
   * resolved from the working directory.
   */
  plugins?: string[];
  /** Milliseconds a stage or rank waits for a silent peer before failing, naming it. Default: the engine's (600 s for stage threads). */
  timeoutMs?: number;
}

/**
 * The training engine of `layout` for this process: the single-process trainer (P = D = 1, no world); the pipeline on
 * worker threads (P > 1, D = 1, no world); with a world, this rank's part of the P × D grid — the data-parallel ZeRO
 * engine (P = 1) or one pipeline stage whose data-parallel group reduces its gradients (`pipelineRankEngine`,
 * Megatron's layout: stage s holds ranks s·D … s·D + D − 1). Layers per stage come from the partitioner or blocks
 * (`planPipeline`). One-line errors: P above the model's layers, an unknown schedule or partition, bad blocks, a world
 * that is not P × D, D > 1 without a world. A note when M < P (the pipeline never fills).
 */
export function parallelEngine(
  layout: ParallelLayout,
  registry: PluginRegistry,
  options: ParallelEngineOptions = {},
): EngineFactory {
  return async (setup) => {
    const names = fieldNames(options.naming);
    const { pp, dp, microbatches: m } = layout;
    const world = options.world;
    if (world && world.size !== pp * dp) {
      throw new YuanError(
        'usage',
        `the world has ${world.size} ranks but ${names.label('pp', pp)} × ${names.label('dp', dp)} needs ${pp * dp}: WORLD_SIZE must be P × D`,
      );
    }
    if (!world && dp > 1)
      throw new YuanError(
        'usage',
        `${names.label('dp', dp)} needs ${pp * dp} ranks: start them with trainParallel, yuan launch, torchrun, srun or an indexed Job`,
      );
    if (pp === 1)
      return world
        ? dataParallelEngine({ group: world, zero: layout.zero, recompute: layout.recompute as LayerRecompute })(setup)
        : singleProcessEngine(setup);
    if (!registry.has('schedule', layout.schedule))
      throw new YuanError(
        'usage',
        `unknown schedule "${layout.schedule}" (schedules: ${registry.names('schedule').join(', ') || 'none registered'})`,
      );
    const layers = setup.config.model.numLayers;
    if (pp > layers)
      throw new YuanError('usage', `${names.label('pp', pp)} has more stages than the model's ${layers} layers`);
    const parameters = modelParameters(setup.config, setup.attention);
    let blocks: number[];
    if (setup.attention.activation) {
      blocks = planPipeline({
        model: setup.config.model,
        parameters,
        attention: { plugin: setup.attention, options: setup.config.attention.options },
        stages: pp,
        microbatches: m,
        microBatchSize: setup.train.microBatchSize,
        seqLength: setup.train.seqLength,
        partition: layout.partition,
        schedule: layout.schedule,
        recompute: layout.recompute,
        registry,
      }).blocks;
    } else {
      // an attention plugin without activation terms: the partitions that need no memory model still work
      if (layout.partition === 'memory') {
        throw new YuanError(
          'usage',
          `partition "memory" needs the memory model, but attention plugin "${setup.attention.name}" does not describe its activation memory (no activation() descriptor)`,
        );
      }
      const groups = groupParameters(parameters, layers);
      const ctx = {
        layers,
        // a schedule with virtual stages partitions the layers over all of them
        stages: pp * (getSchedule(layout.schedule, registry).chunks ?? 1),
        layerParameters: groups.layers,
        firstStageParameters: groups.embedding,
        lastStageParameters: groups.head + groups.embedding,
      };
      blocks = partitionLayers(layout.partition, ctx, registry);
    }
    if (m < pp)
      options.onNote?.(
        `note: ${names.label('microbatches', m)} < ${names.label('pp', pp)}: the pipeline never fills (bubble ${(((pp - 1) / (m + pp - 1)) * 100).toFixed(0)}% of each step)`,
      );
    const common = {
      stages: pp,
      microbatches: m,
      schedule: layout.schedule,
      registry,
      partition: blocks,
      recompute: layout.recompute,
    };
    if (world) return pipelineRankEngine({ ...common, world, dataParallel: dp, zero: layout.zero })(setup);
    // the stage workers import the modules of the plugins they use themselves (a plugin object cannot cross threads)
    const plugins =
      options.plugins ??
      stageModuleSources(registry, setup.config.attention.name, setup.backend).map((source) =>
        resolvePluginModule(source, process.cwd()),
      );
    return pipelineEngine({ ...common, plugins, timeoutMs: options.timeoutMs })(setup);
  };
}

/** What `trainParallel` is asked to do: a training run (`runTraining`'s options) under the config's `parallel` layout. */
export interface ParallelTrainOptions extends Omit<RunOptions, 'engine' | 'lookup'> {
  /**
   * The frozen plugin registry of this process: every name the run chooses (attention, schedule, partition, transport,
   * tensor backend) is looked up in it, so it must hold the packages that provide them (`@yuan/model`, `@yuan/plan`,
   * `@yuan/comm`, `@yuan/tensor`, ...), registered as any plugin package is.
   */
  registry: PluginRegistry;
  /** How thread and process ranks rebuild the registry. Default: every plugin source of `registry`, resolved from the working directory. */
  modules?: readonly PluginModuleRef[];
  /** Seconds a rank or stage waits for a silent peer before failing, naming it. Default 60 for ranks, 600 for stage threads; an error for a single-process run. */
  timeoutSeconds?: number;
  /** The code version ranks compare at start-up (a rank running another build is refused). Default `@yuan/parallel-zero`'s. */
  codeVersion?: string;
  /** The environment that says whether this process is one rank of a launched job. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** How errors name the layout's fields (the CLI: by flag). */
  naming?: LayoutNaming;
}

/** What `trainParallel` returns: the run's result (rank 0's, where this process started the ranks) and where it ran. */
export interface ParallelRunResult extends RunResult {
  /** This process's global rank (0 unless it is one rank of a launched job); only rank 0 wrote. */
  rank: number;
  /** Ranks of the run (P × D; 1 for a single process, also with stage threads). */
  worldSize: number;
  /** The resolved layout. */
  layout: ParallelLayout;
}

/** The serialisable part of a run that crosses to thread and process ranks. */
interface RankPayload {
  config: YuanConfig;
  layout: ParallelLayout;
  naming?: LayoutNaming;
  run: Pick<
    RunOptions,
    'data' | 'steps' | 'out' | 'seed' | 'metrics' | 'resume' | 'test' | 'testBatches' | 'backend' | 'label'
  >;
  modules: PluginModuleRef[];
  transport: string;
  timeoutMs: number;
  codeVersion?: string;
}

/** A progress event of rank 0, posted to the thread or process that started the ranks. */
export type RankEvent =
  | { yuanRankEvent: 'step'; step: number; total: number; status: string }
  | { yuanRankEvent: 'note'; text: string }
  | { yuanRankEvent: 'result'; result: RunResult };

/**
 * This process's rank when the environment makes it one rank of a launched job (torchrun or `yuan launch`: RANK and
 * WORLD_SIZE; srun with more than one task; a Kubernetes indexed Job with WORLD_SIZE), else undefined.
 */
function launchedRank(env: Record<string, string | undefined>): RankInfo | undefined {
  const launched =
    (env.RANK !== undefined && env.WORLD_SIZE !== undefined) ||
    (env.SLURM_PROCID !== undefined && Number(env.SLURM_NTASKS ?? env.SLURM_NPROCS ?? 1) > 1) ||
    (env.JOB_COMPLETION_INDEX !== undefined && env.WORLD_SIZE !== undefined);
  return launched ? rankFromEnvironment(env) : undefined;
}

/** Every plugin source of `registry` (except plugins registered without one) with its module file resolved from `baseDir`. */
export function pluginModulesOf(registry: PluginRegistry, baseDir = process.cwd()): PluginModuleRef[] {
  const specs = new Set<string>();
  for (const kind of registry.kinds())
    for (const name of registry.names(kind)) specs.add(registry.sourceOf(kind, name));
  specs.delete('unknown');
  return [...specs].map((spec) => ({ spec, file: resolvePluginModule(spec, baseDir) }));
}

/** The registry a thread or process rank rebuilds: each module imported from its file, its plugins registered under its spec. */
async function registryFromModules(modules: readonly PluginModuleRef[]): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  for (const m of modules) for (const p of await loadPluginModule(m.file)) registry.register(p as never, m.spec);
  return registry.freeze();
}

/** `rank 3 (pipeline stage 1, data-parallel rank 1)` with a pipeline, else `data-parallel rank 3`. */
function rankName(layout: ParallelLayout, rank: number | string): string {
  if (layout.pp === 1) return `data-parallel rank ${rank}`;
  return typeof rank === 'number'
    ? `rank ${rank} (pipeline stage ${Math.floor(rank / layout.dp)}, data-parallel rank ${rank % layout.dp})`
    : `rank ${rank}`;
}

/** A hash of everything the ranks must agree on (the config with its layout, the data, steps, seed); exchanged at start-up. */
function configHash(p: RankPayload): string {
  const { config, run } = p;
  return createHash('sha256')
    .update(JSON.stringify({ config, data: path.resolve(run.data), steps: run.steps, seed: run.seed }))
    .digest('hex')
    .slice(0, 16);
}

/** Where the built rank entry is (dist/rank-worker.js beside dist/index.js; from source, the package's dist). */
function rankEntry(): string {
  for (const rel of ['./rank-worker.js', '../dist/rank-worker.js']) {
    const f = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(f)) return f;
  }
  throw new YuanError(
    'pipeline',
    'the rank entry (dist/rank-worker.js) is missing: build @yuan/parallel-pipeline first',
  );
}

/** Callbacks of one rank's run. */
interface RankCallbacks {
  onStep?: RunOptions['onStep'];
  onNote?: RunOptions['onNote'];
}

/**
 * Runs one rank of a P × D run from its payload: joins the world over the payload's transport (threads: the worker's
 * data; otherwise `rank`, or the environment), builds this rank's engine (`parallelEngine` with the world) and runs the
 * training loop; rank 0 writes. Used by launched processes in-process, and by the rank entry in threads and processes.
 */
export async function runRankPayload(
  payload: unknown,
  rank: RankInfo | undefined,
  callbacks: RankCallbacks,
  registry?: PluginRegistry,
): Promise<RunResult> {
  const p = payload as RankPayload;
  const reg = registry ?? (await registryFromModules(p.modules));
  const backend = await initBackend(p.run.backend, reg);
  const group = await createProcessGroup({
    transport: p.transport,
    registry: reg,
    configHash: configHash(p),
    codeVersion: p.codeVersion,
    timeoutMs: p.timeoutMs,
    ...(rank
      ? { rank: rank.rank, worldSize: rank.worldSize, masterAddr: rank.masterAddr, masterPort: rank.masterPort }
      : {}),
  });
  try {
    const engine = parallelEngine(p.layout, reg, {
      world: group,
      naming: p.naming,
      onNote: group.rank === 0 ? callbacks.onNote : undefined,
    });
    return await runTraining({
      ...p.run,
      config: p.config,
      lookup: attentionLookup(reg),
      backend: backend.name,
      engine,
      onStep: callbacks.onStep,
      onNote: callbacks.onNote,
    });
  } finally {
    await group.close();
  }
}

async function freePort(): Promise<number> {
  // a port the kernel just handed out (a random one could be taken, e.g. by another run's rendezvous)
  return new Promise<number>((resolve, reject) => {
    const probe = createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function forward(event: RankEvent, callbacks: RankCallbacks): void {
  if (event.yuanRankEvent === 'step') callbacks.onStep?.(event.step, event.total, event.status);
  else if (event.yuanRankEvent === 'note') callbacks.onNote?.(event.text);
}

/**
 * Trains under the config's `parallel` layout, whatever it is — what `yuan train` does for every layout:
 * - P = D = 1: the single-process trainer in this process;
 * - P > 1, D = 1, a transport whose ranks are threads (`threads`): one process, one worker thread per stage;
 * - otherwise P × D ranks, each one stage of the grid (Megatron's order: global rank r is stage ⌊r / D⌋, data-parallel
 *   rank r mod D), started here as worker threads (a transport whose `ranks` are `threads`, such as `threads`) or as
 *   local processes (any other transport, such as `tcp` or a third-party one); the transport is looked up in `registry`;
 * - in a launched job (torchrun, `yuan launch`, srun, an indexed Job: detected once, from `env`) this process is one
 *   rank; D defaults to WORLD_SIZE / P and the world must be P × D.
 * Ranks get the resolved config and layout serialised, never flags; they rebuild the registry from `modules`. Rank 0
 * writes metrics and checkpoints; its progress reaches `onStep`/`onNote` wherever it runs. The layout is validated
 * once (`parallelLayout`). Errors: a bad layout (one line naming the field); a rank's failure names the rank (and its
 * stage); a lost or silent peer names it on the other ranks.
 */
export async function trainParallel(options: ParallelTrainOptions): Promise<ParallelRunResult> {
  const { registry, naming, onStep, onNote } = options;
  const names = fieldNames(naming);
  const launched = launchedRank(options.env ?? process.env);
  const layout = parallelLayout(options.config, { worldSize: launched?.worldSize, naming });
  const config = withParallelLayout(options.config, layout);
  const worldSize = launched ? launched.worldSize : layout.pp * layout.dp;
  // the transport is a registry lookup; where its ranks run is the plugin's own description (`ranks`), never its name
  const transportPlugin = (name: string): TransportPlugin => {
    if (!registry.has('transport', name)) {
      throw new YuanError(
        'usage',
        `${names.field('transport')} "${name}" is not a registered transport (transports: ${registry.names('transport').join(', ') || 'none registered'})`,
      );
    }
    return registry.get('transport', name);
  };
  const stageThreads =
    !launched && layout.dp === 1 && layout.pp > 1 && transportPlugin(layout.transport).ranks === 'threads';
  if (worldSize === 1 && !launched && options.timeoutSeconds !== undefined) {
    throw new YuanError(
      'usage',
      `${names.field('timeout')} applies to parallel runs: ${names.hint('dp', 'D')} or ${names.hint('pp', 'P').replace(/^add /, '')}`,
    );
  }
  const run = {
    data: options.data,
    steps: options.steps,
    out: options.out,
    seed: options.seed,
    metrics: options.metrics,
    resume: options.resume,
    test: options.test,
    testBatches: options.testBatches,
    backend: options.backend,
    label: options.label,
  };
  if (!launched && (worldSize === 1 || stageThreads)) {
    const backend = await initBackend(options.backend, registry);
    const sources = stageModuleSources(registry, config.attention.name, backend.name);
    const plugins =
      options.modules &&
      sources
        .map((spec) => options.modules!.find((m) => m.spec === spec)?.file)
        .filter((f): f is string => f !== undefined);
    const timeoutMs = options.timeoutSeconds === undefined ? undefined : options.timeoutSeconds * 1000;
    const engine = parallelEngine(layout, registry, { naming, onNote, timeoutMs, plugins });
    const r = await runTraining({
      ...run,
      config,
      lookup: attentionLookup(registry),
      backend: backend.name,
      engine,
      onStep,
      onNote,
    });
    return { ...r, rank: 0, worldSize: 1, layout };
  }
  // a launched job's ranks are processes: a transport between threads of one process cannot join them, so they talk tcp
  const transport = launched && transportPlugin(layout.transport).ranks === 'threads' ? 'tcp' : layout.transport;
  const plugin = transportPlugin(transport);
  const payload: RankPayload = {
    config,
    layout,
    naming,
    run,
    modules: [...(options.modules ?? pluginModulesOf(registry))],
    transport,
    timeoutMs: (options.timeoutSeconds ?? 60) * 1000,
    codeVersion: options.codeVersion,
  };
  if (launched) {
    const r = await runRankPayload(payload, launched, { onStep, onNote }, registry);
    return { ...r, rank: launched.rank, worldSize, layout };
  }
  // bad data stops the job here, on one line, before any rank starts (every rank checks it again before its first step)
  checkTrainingData(config, options.data);
  const env = { ...process.env, YUAN_NATIVE_THREADS: process.env.YUAN_NATIVE_THREADS ?? '1' };
  const callbacks = { onStep, onNote };
  if (plugin.ranks === 'threads') {
    try {
      const results = await spawnThreadRanks(rankEntry(), worldSize, payload, {
        timeoutMs: payload.timeoutMs,
        workerOptions: { env },
        onMessage: (rank, m) => {
          if (rank === 0 && m && typeof m === 'object' && 'yuanRankEvent' in m) forward(m as RankEvent, callbacks);
        },
      });
      return { ...(results[0] as RunResult), rank: 0, worldSize, layout };
    } catch (e) {
      const f = (e as { failures?: { rank: number; message: string }[] }).failures?.[0];
      if (layout.pp === 1 || !f) throw e;
      throw new YuanError('rank', `${rankName(layout, f.rank)} failed: ${f.message}`);
    }
  }
  // local processes: each reads the payload from a file and joins over the transport with torchrun's variables
  const dir = await mkdtemp(path.join(tmpdir(), 'yuan-ranks-'));
  try {
    const file = path.join(dir, 'payload.json');
    await writeFile(file, JSON.stringify(payload));
    let result: RunResult | undefined;
    const r = await launchLocal({
      nproc: worldSize,
      masterPort: await freePort(),
      command: [process.execPath, rankEntry(), file],
      env,
      onLine: (rank, stream, line) => {
        if (rank === 0 && stream === 'stdout' && line.startsWith('{"yuanRankEvent"')) {
          const event = JSON.parse(line) as RankEvent;
          if (event.yuanRankEvent === 'result') result = event.result;
          else forward(event, callbacks);
        } else if (stream === 'stderr' && (rank === 0 || /error/i.test(line)))
          onNote?.(rank === 0 ? line : `[rank ${rank}] ${line}`);
      },
    });
    if (r.code !== 0) {
      const first = r.failures[0];
      throw new YuanError(
        'rank',
        `${rankName(layout, first?.rank ?? '?')} failed: ${first?.message ?? `exit code ${r.code}`}`,
      );
    }
    if (!result) throw new YuanError('rank', 'rank 0 reported no result');
    return { ...result, rank: 0, worldSize, layout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
