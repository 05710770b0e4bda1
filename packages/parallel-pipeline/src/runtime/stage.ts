import { YuanError } from '@yuan/core';
import {
  accumulateGrads,
  AdamW,
  clipGrads,
  clipScale,
  disposeGrads,
  keepsUpdate,
  LayerRange,
  type DeferredWeights,
  type GradMap,
  type GradientStep,
  type KeptActivations,
  type LayerwiseGroup,
  type RangeBatch,
  type SpeculativeUpdate,
} from '@yuan/train';
import { BufferMeter, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';
import { GradientSpace, ShardedAdamW } from '@yuan/parallel-zero';
import type { Instruction } from '@yuan/plan';
import type { StageHooks } from './hooks.js';
import type { MicroInput, StageInit, StageStepReport } from './protocol.js';
import type { StageLinks } from './links.js';

const TIED = 'model.embed_tokens.weight';

/**
 * A flat gradient space of the stage reduced across its data-parallel group: the stage's parameters except the tied
 * embedding, and (when P > 1) the tied embedding alone, so its shards are laid out alike on the first and last stage
 * and both copies get bit-identical updates.
 */
interface StageSpace {
  /** Under ZeRO 2 one bucket per sub-part of the range (the embedding/head part, each layer), else one bucket. */
  space: GradientSpace;
  /** Counted in the global gradient norm (the tied embedding only on the first stage). */
  counted: boolean;
  /**
   * ZeRO 2: reduce-scattered group by group during every micro-batch's backward (not the tied embedding, which is
   * summed with the other end first).
   */
  perMicro: boolean;
  /** ZeRO 1/2: the AdamW moments of the shard. */
  sharded?: ShardedAdamW;
  /** ZeRO 1/2: the reduced gradient shard of the step; ZeRO 0: the all-reduced whole space. */
  reduced?: Float32Array;
}

/** One model chunk of the rank: a (virtual) stage's layer range; the rank's only one without virtual stages. */
interface Chunk {
  /** The virtual stage 0 … V − 1 (the rank's index without virtual stages). */
  stage: number;
  range: LayerRange;
  /** Virtual stage 0: it has the embedding. */
  first: boolean;
  /** Virtual stage V − 1: it has the head and the loss. */
  last: boolean;
}

/** Per-micro-batch tensors of the step in flight (one per chunk and micro-batch). */
interface Micro {
  chunk: Chunk;
  input: MicroInput;
  batch: RangeBatch & { positions: tf.Tensor2D };
  /** `none`/`selective`/`full`: what the range's forward kept for the backward (`LayerRange.forwardKeeping`). */
  kept?: KeptActivations;
  /** The received stage input (none on the first stage): `full` keeps it as layer 0's input, `stage` recomputes from it. */
  received?: tf.Tensor3D;
  dy?: tf.Tensor3D;
  /** After a split backward's input half: the micro-batch's queue of weight-gradient work, for `backwardWeight`. */
  deferred?: DeferredWeights;
}

/** What one optimizer step's program works with besides the stage's own state. */
interface StepRun {
  step: number;
  /** The step's learning rate (the decision's, known before it: a post-validated update applies it first). */
  lr: number;
  t0: number;
  inputs: MicroInput[];
  decide: (norm: StageNorm) => Promise<StageDecision>;
  /** Activations received and not yet forwarded, by `key(stage, micro-batch)`. */
  received: Map<string, tf.Tensor3D>;
  /** Outputs forwarded and not yet sent (or taken by the next chunk on this rank). */
  outputs: Map<string, tf.Tensor>;
  /** dL/d(input) computed and not yet sent (or taken by the previous chunk on this rank). */
  dxs: Map<string, tf.Tensor3D>;
  /** The range's layer-forward count when the step started. */
  forwardsBefore: number;
  /**
   * Post-validation: return after the speculative update without waiting for the step's decision (the next step may
   * start; the decision is settled at its optimizer step, or before evaluation or the checkpoint state).
   */
  defer: boolean;
}

/** A post-validated update waiting for its step's decision while the next step may already run. */
interface PendingValidation {
  step: number;
  lr: number;
  update: SpeculativeUpdate;
  decided: Promise<StageDecision>;
  /** The decision, once it has arrived. */
  outcome?: StageDecision;
}

/** Thrown inside a step whose forwards used a speculative update that its decision then changed: the step reruns. */
class RestartStep extends Error {}

/** The interpreter's handler of each instruction kind. */
type Handlers = {
  [K in Instruction['op']]: (ins: Extract<Instruction, { op: K }>, run: StepRun) => Promise<void> | void;
};

/** The compute instructions, timed per (virtual) stage in the step report. */
const PASSES: Partial<Record<Instruction['op'], 'forward' | 'backward' | 'backwardInput' | 'backwardWeight'>> = {
  forward: 'forward',
  backward: 'backward',
  backwardInput: 'backwardInput',
  backwardWeight: 'backwardWeight',
};

/** The maps' key of (virtual) stage `stage`'s micro-batch `mb`. */
const key = (stage: number, mb: number) => `${stage}:${mb}`;

/** What a stage reports before its optimizer step: its part of the squared gradient norm, and (last stage) its loss. */
export interface StageNorm {
  /** Sum of squares of this stage's gradients (its shard under data parallelism; the tied embedding only on the first stage). */
  squaredNorm: number;
  /** Last stage: the mean loss of its micro-batches, each weighted 1/M of the global step (nats/token). */
  loss?: number;
  /** Decoder-layer forwards the stage ran in the step so far (its forwards and backwards are done by then). */
  layerForwards?: number;
}

/** The step's decision, made from every stage's (and data-parallel rank's) StageNorm: update with lr, or discard. */
export type StageDecision = { type: 'update'; lr: number; norm: number; clip: number } | { type: 'discard' };

/**
 * One pipeline stage (on a worker thread, or the main thread of a pipeline rank): its layers as a `LayerRange` of
 * `@yuan/train` (one sub-part per layer, plus the embedding and/or head), whose forward keeps what the recompute
 * setting says (`none`/`selective`: each sub-part's autodiff tape; `full`: each layer's input, the layer recomputed in
 * the backward; `stage`: the stage input) and whose backward runs layer by layer from the upstream gradient [B, T, H]
 * (or the loss on the last stage); under data parallelism the gradients go into `GradientSpace`s of `@yuan/parallel-zero`
 * (ZeRO 2: reduce-scattered group by group while the backward goes on, two groups in flight); AdamW over its own
 * parameters (sharded under ZeRO 1/2); and an interpreter of the schedule's instruction list (the planner's
 * `Instruction`s), dispatching each instruction to its handler in a table.
 */
export class Stage {
  /** The rank's model chunks (one per virtual stage it holds, ascending). */
  private readonly chunks: Chunk[];
  readonly params: Map<string, tf.Variable>;
  /** The head chunk's copy of the tied embedding when this rank holds both ends (kept equal to `params`' after updates). */
  private readonly mirror?: tf.Variable;
  readonly optimizer: AdamW;
  private readonly first: boolean;
  private readonly last: boolean;
  private readonly micro = new Map<string, Micro>();
  private grads?: GradMap;
  private lossSum = 0;
  private report!: StageStepReport;
  private step = 0;
  private currentStep = 0;
  private readonly spaces: StageSpace[] = [];
  /** The last step's post-validation outcome (`train.postValidate` without data parallelism); test seam. */
  postValidation?: { rolledBack: boolean; applied: boolean };
  /** Post-validation: the last step's update while its decision is not settled. */
  private pending?: PendingValidation;
  /** The try of the step in flight (0; 1 after a restart): part of every message tag, so a rerun's messages never meet the first try's. */
  private attempt = 0;

  constructor(
    readonly init: StageInit,
    attention: TensorAttentionPlugin<unknown>,
    private readonly links: StageLinks | undefined,
    weights?: Map<string, Float32Array>,
    private readonly group?: ProcessGroup,
    /** Test seam (`StageHooks`): installed only by the test-only `testing` entry. */
    private readonly hooks?: StageHooks,
  ) {
    const { config, seed, chunks, virtualStages: V } = init;
    if (!chunks.length) throw new YuanError('pipeline', `stage ${init.stage} holds no (virtual) stage`);
    this.chunks = chunks.map((c) => {
      const part = {
        embedding: c.stage === 0,
        head: c.stage === V - 1,
        firstLayer: c.firstLayer,
        endLayer: c.endLayer,
      };
      const range = weights
        ? LayerRange.fromWeights(config, attention, weights, part)
        : LayerRange.init(config, attention, seed, part);
      return { stage: c.stage, range, first: part.embedding, last: part.head };
    });
    this.first = this.chunks.some((c) => c.first);
    this.last = this.chunks.some((c) => c.last);
    // the chunks' parameters by name; the tied embedding twice when the rank holds both ends: the head's copy mirrors
    const params = new Map<string, tf.Variable>();
    for (const c of this.chunks) {
      for (const [n, v] of c.range.params) {
        if (params.has(n)) this.mirror = v;
        else params.set(n, v);
      }
    }
    this.params = params;
    const t = init.train;
    const adam = { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay };
    this.optimizer = new AdamW(adam);
    const dp = init.dataParallel;
    if (group && dp) {
      const separate = V > 1 && this.params.has(TIED);
      const entry = (name: string) => ({ name, shape: this.params.get(name)!.shape });
      // the sub-parts in params order (per chunk: embedding/head first, then layer by layer): each one's parameters are contiguous
      const parts = this.chunks
        .flatMap((c) => [...(c.range.ends ? [c.range.ends] : []), ...c.range.layers])
        .map((p) => [...p.params.keys()].filter((n) => !(separate && n === TIED)).map(entry))
        .filter((b) => b.length > 0);
      const make = (buckets: ReturnType<typeof entry>[][], counted: boolean, perMicro: boolean) => {
        const space = new GradientSpace(group, buckets);
        const sharded = dp.zero > 0 ? new ShardedAdamW(space.slots, space.total, space.ranges, adam) : undefined;
        this.spaces.push({ space, counted, perMicro, sharded });
      };
      if (parts.length) make(dp.zero === 2 ? parts : [parts.flat()], true, dp.zero === 2);
      if (separate) make([[entry(TIED)]], this.first, false);
    }
  }

  /** Under ZeRO 2: the space that reduces `name` during the backward (else its gradient is accumulated as a whole tensor). */
  private perMicroSpace(name: string): GradientSpace | undefined {
    return this.spaces.find((sp) => sp.perMicro && sp.space.has(name))?.space;
  }

  get parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  /** Decoder-layer forwards the rank's chunks ran so far. */
  private get layerForwards(): number {
    return this.chunks.reduce((a, c) => a + c.range.layerForwards, 0);
  }

  /** After an update: the head chunk's tied copy takes the updated embedding (both ends on this rank). */
  private syncMirror(): void {
    if (this.mirror) this.mirror.assign(this.params.get(TIED)!);
  }

  /** The chunk of (virtual) stage `stage` (default: the rank's own, without virtual stages). */
  private chunkOf(stage: number | undefined): Chunk {
    const v = stage ?? this.init.stage;
    const c = this.chunks.find((x) => x.stage === v);
    if (!c)
      throw new YuanError('pipeline', `rank ${this.init.stage}: the schedule names stage ${v}, which it does not hold`);
    return c;
  }

  private bytesOf(tensors: Iterable<tf.Tensor>): number {
    let n = 0;
    for (const t of tensors) n += t.size * 4;
    return n;
  }

  private staticBytes = 0;
  private peak = 0;
  private readonly meter = new BufferMeter();
  private accumulatorBytes(): number {
    return this.grads ? this.bytesOf(this.grads.values()) : 0;
  }

  /**
   * Runs `f` and raises the step's activation high-water mark: the distinct buffer bytes allocated since the step
   * started (`BufferMeter`: a buffer shared by views or saved copies counts once, as the planner counts it) while `f`
   * runs, minus `exclude(result)` (gradient bytes alive then: accumulators and the micro-batch's parameter gradients,
   * which Megatron's per-parameter bytes count as static). With `profileMemory` the high-water mark inside `f` comes
   * from tf.profile's kernel-level peakBytes relative to the step start instead.
   */
  private async track<T>(f: () => T, exclude: (out: T) => number): Promise<T> {
    let out!: T;
    if (this.init.profileMemory) {
      const info = await tf.profile(() => {
        out = f();
        return undefined as never;
      });
      const peak = info.kernels.length ? info.peakBytes : tf.memory().numBytes;
      this.peak = Math.max(this.peak, peak - this.staticBytes - exclude(out));
      return out;
    }
    this.meter.peak = 0;
    this.meter.sampling = true;
    try {
      out = f();
    } finally {
      this.meter.sampling = false;
    }
    this.peak = Math.max(this.peak, this.meter.peak - exclude(out));
    return out;
  }

  private tensors(input: MicroInput, chunk: Chunk): Micro {
    const shape: [number, number] = [input.rows, input.seqLength];
    return {
      chunk,
      input,
      batch: {
        positions: tf.tensor2d(input.positions, shape, 'int32'),
        ids: input.ids && tf.tensor2d(input.ids, shape, 'int32'),
        targets: input.targets && tf.tensor2d(input.targets, shape, 'int32'),
        mask: input.mask && tf.tensor2d(input.mask, shape, 'float32'),
      },
    };
  }

  private freeMicro(m: Micro): void {
    const { positions, ids, targets, mask } = m.batch;
    if (m.kept) m.chunk.range.release(m.kept, m.received);
    if (m.deferred) m.chunk.range.releaseDeferred(m.deferred);
    tf.dispose([positions, ids, targets, mask, m.received, m.dy].filter((t) => t !== undefined) as tf.Tensor[]);
  }

  /** Micro-batch `mb` of (virtual) stage `stage` in the step, its tensors made on first use. */
  private microOf(stage: number | undefined, mb: number, run: StepRun): Micro {
    const chunk = this.chunkOf(stage);
    let m = this.micro.get(key(chunk.stage, mb));
    if (!m) {
      const input = run.inputs[mb];
      if (!input)
        throw new YuanError(
          'pipeline',
          `stage ${this.init.stage}: the schedule names micro-batch ${mb}, but the step has ${run.inputs.length}`,
        );
      m = this.tensors(input, chunk);
      this.micro.set(key(chunk.stage, mb), m);
    }
    return m;
  }

  /** The forward of one micro-batch: the output [B, T, H] to send, or (last stage) the loss. */
  private forward(m: Micro, received: tf.Tensor3D | undefined): tf.Tensor {
    const mode = this.init.recompute;
    const range = m.chunk.range;
    if (mode === 'stage') {
      m.received = received;
      return range.forward(m.batch, received);
    }
    const { result, ...kept } = range.forwardKeeping(m.batch, received, mode);
    m.kept = kept;
    // `full` keeps the received input as layer 0's; the tapes hold what their backward reads of it
    if (mode === 'full') m.received = received;
    else received?.dispose();
    return result;
  }

  /**
   * Backward of one micro-batch through the range (layer by layer over the kept tapes under `none`/`selective`, with
   * each layer recomputed under `full`, one recomputed tape under `stage`), from the
   * received dL/d(output) or the loss: the gradients of the accumulated parameters are summed into the step's (× 1/M,
   * in micro-batch order: the single-process trainer's accumulation); under ZeRO 2 the others go to their gradient
   * space as each group is produced, reduce-scattered while the backward goes on. Returns dL/d(input) unless first.
   */
  private async backward(m: Micro): Promise<tf.Tensor3D | undefined> {
    const sink = this.sink();
    const range = m.chunk.range;
    let dx: tf.Tensor3D | undefined;
    try {
      const dy = m.chunk.last ? undefined : m.dy;
      if (this.init.recompute === 'stage')
        dx = (await range.backwardWhole(m.batch, m.received, dy, sink.onGrads, sink.step)).dx;
      else dx = (await range.backward(m.batch, m.kept!, dy, sink.onGrads, sink.step)).dx;
      await sink.finish();
    } catch (e) {
      dx?.dispose();
      await sink.abort();
      throw e;
    }
    return dx;
  }

  /**
   * The input half of a split backward (`I`): dL/d(input) of the micro-batch (unless the chunk is the first), its
   * weight-gradient work queued in `m.deferred` (`LayerRange.backwardInput`); what the forward kept is freed (the
   * queue holds what the weight gradients read).
   */
  private async backwardInput(m: Micro): Promise<tf.Tensor3D | undefined> {
    const { step } = this.sink();
    const range = m.chunk.range;
    const dy = m.chunk.last ? undefined : m.dy;
    const stage = this.init.recompute === 'stage';
    const r = await range.backwardInput(m.batch, stage ? undefined : m.kept, m.received, dy, step);
    m.deferred = r.deferred;
    if (m.kept) range.release(m.kept, m.received);
    m.kept = undefined;
    tf.dispose([m.received, m.dy].filter((t) => t !== undefined) as tf.Tensor[]);
    m.received = undefined;
    m.dy = undefined;
    return r.dx;
  }

  /** The weight half (`W`): runs the micro-batch's queued weight-gradient work, its gradients summed as `backward`'s. */
  private async backwardWeight(m: Micro): Promise<void> {
    if (!m.deferred)
      throw new YuanError(
        'pipeline',
        `stage ${m.chunk.stage}: a weight backward before the input backward of a micro-batch (the schedule's W precedes its I)`,
      );
    const sink = this.sink();
    const deferred = m.deferred;
    m.deferred = undefined;
    try {
      await m.chunk.range.backwardWeights(deferred, sink.onGrads, sink.step);
      await sink.finish();
    } catch (e) {
      await sink.abort();
      throw e;
    }
  }

  /**
   * Where one backward's (or weight backward's) gradients go: the gradients of the accumulated parameters are summed
   * into the step's (× 1/M, in the order the backwards come: the built-in schedules' micro-batch order, the
   * single-process trainer's accumulation); under ZeRO 2 the others go to their gradient space as each group is
   * produced, reduce-scattered while the backward goes on. `step` measures each gradient computation's memory.
   */
  private sink() {
    const scale = 1 / this.init.globalMicrobatches;
    // this micro-batch's gradients of the parameters accumulated as whole tensors
    const g: GradMap = new Map();
    const gradBytes = (fresh: GradMap) =>
      this.accumulatorBytes() + this.bytesOf(g.values()) + this.bytesOf(fresh.values());
    const step = (compute: () => GradientStep) => this.track(compute, (r) => gradBytes(r.grads));
    let first = true;
    const onGrads = async (_group: LayerwiseGroup, grads: GradMap) => {
      if (first) {
        // the previous backward's last ZeRO 2 reductions went on under what came between (its input gradient's send,
        // forwards); they end before this backward's first group goes out (one backward's groups in flight at a time)
        for (const sp of this.spaces) if (sp.perMicro) await sp.space.awaitInFlight();
        first = false;
      }
      const toReduce = new Map<GradientSpace, GradMap>();
      for (const [n, t] of grads) {
        const space = this.perMicroSpace(n);
        if (space) toReduce.set(space, (toReduce.get(space) ?? new Map()).set(n, t));
        else {
          // a gradient that comes twice (the tied embedding with both ends on this rank: head, then lookup) is summed
          const prev = g.get(n);
          g.set(n, prev ? tf.add(prev, t) : t);
          if (prev) tf.dispose([prev, t]);
        }
      }
      for (const [space, part] of toReduce) await space.reduceGroup(part, scale);
    };
    const finish = async () => {
      // ZeRO 2's reduce-scatters of this backward go on under what comes next (the input gradient's send, the next
      // micro-batch); `dataParallelStep` drains them before it takes the shard
      const ordered: GradMap = new Map([...this.params.keys()].filter((n) => g.has(n)).map((n) => [n, g.get(n)!]));
      if (!ordered.size) return;
      const prev = this.grads;
      const acc = accumulateGrads(prev, ordered, scale);
      // one chunk's backward (or weight backward) gives only its parameters' gradients: the others stay as they are
      if (prev) for (const [n, t] of prev) if (!acc.has(n)) acc.set(n, t);
      this.grads = new Map([...this.params.keys()].filter((n) => acc.has(n)).map((n) => [n, acc.get(n)!]));
    };
    const abort = async () => {
      disposeGrads(g);
      for (const sp of this.spaces) if (sp.perMicro) await sp.space.settle();
    };
    return { step, onGrads, finish, abort };
  }

  /** A message tag: the step, the kind, the (virtual) stage that produced the tensor, the micro-batch. */
  private tag(kind: string, stage: number, mb: number): string {
    return `${this.currentStep}.${this.attempt}:${kind}:${stage}:${mb}`;
  }

  private async recv(from: number, tag: string): Promise<tf.Tensor3D> {
    const t0 = performance.now();
    const t = await this.links!.recv(from, tag);
    this.report.waitMs += performance.now() - t0;
    return t as tf.Tensor3D;
  }

  /** `m` with its upstream gradient: received (`recvGradient`), or the next chunk's dL/d(input) on this rank. */
  private upstream(m: Micro, mb: number, run: StepRun): Micro {
    if (m.chunk.last || m.dy) return m;
    const at = key(m.chunk.stage + 1, mb);
    m.dy = run.dxs.get(at);
    run.dxs.delete(at);
    if (!m.dy)
      throw new YuanError(
        'pipeline',
        `stage ${m.chunk.stage}: the backward of micro-batch ${mb} has no upstream gradient`,
      );
    return m;
  }

  /** The interpreter: one handler per instruction kind (the planner's `Instruction`). */
  private readonly handlers: Handlers = {
    load: (ins, run) => {
      this.microOf(ins.stage, ins.microbatch, run);
    },
    recvActivation: async (ins, run) => {
      const v = this.chunkOf(ins.stage).stage;
      run.received.set(key(v, ins.microbatch), await this.recv(ins.from, this.tag('act', v - 1, ins.microbatch)));
    },
    forward: async (ins, run) => {
      const mb = ins.microbatch;
      const m = this.microOf(ins.stage, mb, run);
      const v = m.chunk.stage;
      this.hooks?.beforeForward?.({
        stage: this.init.stage,
        dataRank: this.init.dataParallel?.rank ?? 0,
        step: run.step,
        microbatch: mb,
      });
      // the input: received, or the previous chunk's output on this rank (no message between them)
      const from = run.received.has(key(v, mb)) ? run.received : run.outputs;
      const at = from === run.received ? key(v, mb) : key(v - 1, mb);
      const r = m.chunk.first ? undefined : (from.get(at) as tf.Tensor3D | undefined);
      if (!m.chunk.first && !r)
        throw new YuanError(
          'pipeline',
          `stage ${v}: the forward of micro-batch ${mb} has no input (received or local)`,
        );
      from.delete(at);
      const out = await this.track(
        () => this.forward(m, r),
        () => this.accumulatorBytes(),
      );
      this.report.maxInFlight = Math.max(this.report.maxInFlight, this.micro.size);
      if (m.chunk.last) {
        this.lossSum += out.dataSync()[0] / this.init.globalMicrobatches;
        out.dispose();
      } else run.outputs.set(key(v, mb), out);
    },
    sendActivation: async (ins, run) => {
      const v = this.chunkOf(ins.stage).stage;
      const y = run.outputs.get(key(v, ins.microbatch))!;
      await this.links!.send(ins.to, this.tag('act', v, ins.microbatch), y);
      y.dispose();
      run.outputs.delete(key(v, ins.microbatch));
    },
    recvGradient: async (ins, run) => {
      const m = this.microOf(ins.stage, ins.microbatch, run);
      m.dy = await this.recv(ins.from, this.tag('grad', m.chunk.stage + 1, ins.microbatch));
    },
    backward: async (ins, run) => {
      const m = this.upstream(this.microOf(ins.stage, ins.microbatch, run), ins.microbatch, run);
      const dx = await this.backward(m);
      if (dx) run.dxs.set(key(m.chunk.stage, ins.microbatch), dx);
      this.freeMicro(m);
      this.micro.delete(key(m.chunk.stage, ins.microbatch));
    },
    backwardInput: async (ins, run) => {
      const m = this.upstream(this.microOf(ins.stage, ins.microbatch, run), ins.microbatch, run);
      const dx = await this.backwardInput(m);
      if (dx) run.dxs.set(key(m.chunk.stage, ins.microbatch), dx);
    },
    backwardWeight: async (ins, run) => {
      const m = this.microOf(ins.stage, ins.microbatch, run);
      await this.backwardWeight(m);
      this.freeMicro(m);
      this.micro.delete(key(m.chunk.stage, ins.microbatch));
    },
    sendGradient: async (ins, run) => {
      const v = this.chunkOf(ins.stage).stage;
      const dx = run.dxs.get(key(v, ins.microbatch))!;
      await this.links!.send(ins.to, this.tag('grad', v, ins.microbatch), dx);
      dx.dispose();
      run.dxs.delete(key(v, ins.microbatch));
    },
    reduceTiedGradients: async (ins) => {
      // Megatron `_allreduce_word_embedding_grads`: the first and last stage add each other's embedding gradient, so
      // both copies get the same update (a + b = b + a exactly in IEEE arithmetic)
      const others = [...new Set(ins.stages)].filter((s) => s !== this.init.stage);
      // one rank holding both ends (ZB-V's rank 0) summed both shares into one gradient already
      if (others.length === 0 && this.first && this.last) return;
      if (others.length !== 1 || !ins.stages.includes(this.init.stage)) {
        throw new YuanError(
          'pipeline',
          `stage ${this.init.stage}: reduceTiedGradients over stages ${ins.stages.join(', ')} is not this stage and one other`,
        );
      }
      const mine = this.grads!.get(TIED)!;
      await this.links!.send(others[0], this.tag('tied', 0, 0), mine);
      const other = await this.recv(others[0], this.tag('tied', 0, 0));
      this.grads!.set(TIED, tf.add(mine, other));
      tf.dispose([mine, other]);
    },
    optimizerStep: async (_ins, run) => {
      if (this.group) {
        await this.dataParallelStep(run.step, run.decide, this.layerForwards - run.forwardsBefore);
        this.report.stepMs = performance.now() - run.t0;
        return;
      }
      this.report.stepMs = performance.now() - run.t0;
      // the tied embedding counts once in the global norm: on the first stage only
      const counted = [...this.grads!].filter(([n]) => !(n === TIED && this.last && !this.first)).map(([, g]) => g);
      const sq = counted.length ? tf.tidy(() => tf.addN(counted.map((g) => tf.sum(tf.square(g))))) : tf.scalar(0);
      const squaredNorm = sq.dataSync()[0];
      sq.dispose();
      const mine = {
        squaredNorm,
        loss: this.last ? this.lossSum : undefined,
        layerForwards: this.layerForwards - run.forwardsBefore,
      };
      if (this.init.train.postValidate) {
        // post-validation (zero-bubble §5): update with the step's lr before the global norm is known; the decision
        // keeps it, rolls it back (a discarded step: non-finite norm) or redoes it clipped (a norm over the clip). With
        // `defer` the step ends here and the next may start at once (no global synchronisation between steps, the
        // paper's point); the decision is settled at that step's optimizer step, which reruns the step if the
        // decision changed the weights its forwards ran with
        const w0 = performance.now();
        const rolledBack = await this.settlePending();
        this.report.waitMs += performance.now() - w0; // waiting for the previous step's decision is idle time too
        this.report.stepMs = performance.now() - run.t0;
        if (rolledBack) throw new RestartStep();
        const decided = run.decide(mine);
        const update = this.optimizer.speculativeUpdate(this.params, this.grads!, run.lr);
        this.syncMirror();
        const pending: PendingValidation = { step: run.step, lr: run.lr, update, decided };
        decided.then(
          (d) => (pending.outcome = d),
          () => undefined, // a failed decision surfaces where it is awaited
        );
        this.pending = pending;
        this.grads = undefined; // the pending update holds them until it is settled
        if (!run.defer) await this.settlePending();
        return;
      }
      const d = await run.decide(mine);
      if (d.type === 'update') {
        clipGrads(this.grads!, d.norm, d.clip);
        this.optimizer.update(this.params, this.grads!, d.lr);
        this.syncMirror();
        this.step = run.step;
      }
      disposeGrads(this.grads);
      this.grads = undefined;
    },
  };

  /**
   * Runs one optimizer step's instruction list over `inputs` (this stage's fields of each micro-batch); before the
   * optimizer step it hands its StageNorm to `decide` (a coordinator's answer, or an all-reduce across the ranks) and
   * updates or discards as told. With `train.postValidate` (no data parallelism) and `defer`, it returns after the
   * speculative update without waiting for the decision: the next `trainStep` may start at once, and settles the
   * decision at its own optimizer step (rerunning itself, as a new try with its own message tags, when the decision
   * rolled the update back); evaluation and the checkpoint state settle it first.
   */
  async trainStep(
    step: number,
    inputs: MicroInput[],
    lr: number,
    decide: (norm: StageNorm) => Promise<StageDecision>,
    defer = false,
  ): Promise<void> {
    this.currentStep = step;
    const t0 = performance.now();
    const forwardsBefore = this.layerForwards;
    for (this.attempt = 0; ; this.attempt++) {
      try {
        await this.runProgram({
          lr,
          step,
          t0,
          inputs,
          decide,
          received: new Map(),
          outputs: new Map(),
          dxs: new Map(),
          forwardsBefore,
          defer,
        });
        return;
      } catch (e) {
        if (!(e instanceof RestartStep)) throw e;
      }
    }
  }

  /**
   * Post-validation: settles the previous step's update with its decision (waiting for it) — kept, rolled back, or
   * redone clipped. Returns whether the weights changed from what the speculative update left (a rollback).
   */
  private async settlePending(): Promise<boolean> {
    const p = this.pending;
    return p ? this.settleWith(p, await p.decided) : false;
  }

  /** Frees a kept speculative update as soon as its decision has arrived and keeps it (called between instructions). */
  private settleIfKept(): void {
    const p = this.pending;
    const d = p?.outcome;
    if (p && d?.type === 'update' && d.lr === p.lr && keepsUpdate(d.norm, d.clip)) this.settleWith(p, d);
  }

  /** Settles `p` with its decision `d` (`AdamW.settleUpdate`); returns whether the update was rolled back. */
  private settleWith(p: PendingValidation, d: StageDecision): boolean {
    this.pending = undefined;
    if (d.type === 'update' && d.lr !== p.lr)
      throw new YuanError(
        'pipeline',
        `stage ${this.init.stage}: step ${p.step}'s lr ${d.lr} is not the ${p.lr} it updated with`,
      );
    const r = this.optimizer.settleUpdate(
      p.update,
      d.type === 'update' ? d.norm : Number.NaN,
      d.type === 'update' ? d.clip : 0,
    );
    if (r.rolledBack) this.syncMirror();
    if (r.applied) this.step = p.step;
    this.postValidation = r;
    disposeGrads(p.update.grads);
    return r.rolledBack;
  }

  /** One try of a step: the instruction list run once over `run.inputs` (see `trainStep`). */
  private async runProgram(run: StepRun): Promise<void> {
    const overlapped = this.pending !== undefined && this.pending.outcome === undefined;
    this.staticBytes = tf.memory().numBytes;
    this.peak = 0;
    this.meter.start();
    this.lossSum = 0;
    for (const sp of this.spaces) sp.space.peakInFlightBytes = 0;
    this.report = {
      stage: this.init.stage,
      activationPeakBytes: 0,
      staticBytes: this.staticBytes,
      tensors: tf.memory().numTensors,
      gradientBytes: this.parameterCount * 4,
      gradientInFlightBytes: 0,
      optimizerBytes: this.optimizerBytes,
      maxInFlight: 0,
      layerForwards: 0,
      stepMs: 0,
      waitMs: 0,
      restarts: this.attempt,
      overlapped,
      passMs: this.chunks.map((c) => ({
        stage: c.stage,
        forward: 0,
        backward: 0,
        backwardInput: 0,
        backwardWeight: 0,
        count: 0,
      })),
    };
    try {
      for (const ins of this.init.program) {
        const handle = this.handlers[ins.op] as (ins: Instruction, run: StepRun) => Promise<void> | void;
        this.settleIfKept();
        const pass = PASSES[ins.op];
        const t0 = pass ? performance.now() : 0;
        await handle(ins, run);
        if (pass) {
          const row = this.report.passMs[this.chunks.indexOf(this.chunkOf((ins as { stage?: number }).stage))];
          row[pass] += performance.now() - t0;
          if (pass === 'forward') row.count++;
        }
      }
    } finally {
      for (const sp of this.spaces) {
        this.report.gradientInFlightBytes = Math.max(this.report.gradientInFlightBytes, sp.space.peakInFlightBytes);
        sp.reduced = undefined;
      }
      for (const m of this.micro.values()) this.freeMicro(m);
      this.micro.clear();
      tf.dispose([...run.received.values(), ...run.outputs.values(), ...run.dxs.values()]);
      disposeGrads(this.grads);
      this.grads = undefined;
      this.meter.stop();
    }
    this.report.activationPeakBytes = Math.max(0, Math.round(this.peak));
    this.report.layerForwards = this.layerForwards - run.forwardsBefore;
  }

  /**
   * The optimizer step under data parallelism: each space's gradients reduced across the stage's data-parallel group
   * (ZeRO 0 all-reduce; 1 reduce-scatter; 2 the shards reduced during the backwards, the tied embedding reduce-scattered now); the
   * squared norm of this rank's shard goes to the coordinator, which sums it over stages and ranks; on `update` every
   * rank clips with the same global norm and updates (ZeRO 0: replicated AdamW; 1/2: its shard, then all-gather).
   */
  private async dataParallelStep(
    step: number,
    decide: (norm: StageNorm) => Promise<StageDecision>,
    layerForwards: number,
  ): Promise<void> {
    const zero = this.init.dataParallel!.zero;
    let squaredNorm = 0;
    for (const sp of this.spaces) {
      const { space } = sp;
      if (sp.perMicro) await space.drain();
      sp.reduced = sp.perMicro
        ? space.takeShard()
        : await space.reduceAll(this.grads!, zero === 0 ? 'allReduce' : 'reduceScatter');
      if (!sp.counted) continue;
      // each rank counts its own shard (ZeRO 0: its part of the all-reduced space), so the world's sum is the norm
      const own =
        zero === 0 ? space.ranges.map(([start, length]) => sp.reduced!.subarray(start, start + length)) : [sp.reduced];
      for (const part of own) for (let k = 0; k < part.length; k++) squaredNorm += part[k] * part[k];
    }
    this.report.gradientBytes =
      4 * this.spaces.reduce((a, sp) => a + (sp.perMicro ? sp.space.shardLength : sp.space.total), 0);
    disposeGrads(this.grads);
    this.grads = undefined;
    const d = await decide({ squaredNorm, loss: this.last ? this.lossSum : undefined, layerForwards });
    if (d.type !== 'update') return;
    const scale = clipScale(d.norm, d.clip);
    if (zero === 0) {
      const grads: GradMap = new Map();
      for (const sp of this.spaces) {
        for (const sl of sp.space.slots) {
          const g = sp.reduced!.subarray(sl.offset, sl.offset + sl.size);
          grads.set(
            sl.name,
            tf.tidy(() => (scale === 1 ? tf.tensor(g, sl.shape) : tf.mul(tf.tensor(g, sl.shape), scale))),
          );
        }
      }
      try {
        this.optimizer.update(this.params, grads, d.lr);
      } finally {
        disposeGrads(grads);
      }
    } else {
      for (const sp of this.spaces) {
        const all = new Float32Array(sp.space.total);
        await sp.sharded!.update(this.params, sp.reduced!, scale, d.lr, all);
        await sp.space.gather(all, this.params);
      }
    }
    this.syncMirror();
    this.step = step;
  }

  /** The report of the last step. */
  get lastReport(): StageStepReport {
    return this.report;
  }

  /**
   * Forward-only losses of evaluation batches (the rank holding the last stage returns them): per batch, the rank's
   * chunks in stage order, each from the previous stage's output (received, or local on this rank).
   */
  async evaluate(id: number, inputs: MicroInput[]): Promise<number[] | undefined> {
    await this.settlePending();
    const losses: number[] = [];
    const { stage: rank, placement } = this.init;
    const tag = (v: number, i: number) => `eval${id}:act:${v}:${i}`;
    for (const [i, input] of inputs.entries()) {
      let local: tf.Tensor3D | undefined;
      for (const c of this.chunks) {
        const m = this.tensors(input, c);
        const prev = c.first ? undefined : placement[c.stage - 1];
        const h =
          prev === undefined
            ? undefined
            : prev === rank
              ? local
              : ((await this.links!.recv(prev, tag(c.stage - 1, i))) as tf.Tensor3D);
        local = undefined;
        const out = c.range.forward(m.batch, h);
        h?.dispose();
        this.freeMicro(m);
        if (c.last) {
          losses.push(out.dataSync()[0]);
          out.dispose();
        } else if (placement[c.stage + 1] === rank) local = out as tf.Tensor3D;
        else {
          await this.links!.send(placement[c.stage + 1], tag(c.stage, i), out);
          out.dispose();
        }
      }
      local?.dispose();
    }
    return this.last ? losses : undefined;
  }

  /** AdamW moment bytes this stage holds: its shards under ZeRO 1/2, else 8 per parameter. */
  get optimizerBytes(): number {
    return this.sharded ? this.spaces.reduce((a, sp) => a + sp.sharded!.optimizerBytes, 0) : 8 * this.parameterCount;
  }

  /** Whether the AdamW state is sharded across the stage's data-parallel group (ZeRO 1/2): checkpoints take `shardState`. */
  get sharded(): boolean {
    return this.spaces.some((sp) => sp.sharded);
  }

  /**
   * This rank's optimizer shard for a checkpoint shard file (ZeRO 1/2): the stage's spaces as one flat space (slots of
   * each space in turn), its owned ranges there, and m and v over them (concatenated in range order).
   */
  async shardState(): Promise<{
    slots: Array<{ name: string; size: number }>;
    ranges: Array<[number, number]>;
    m: Float32Array;
    v: Float32Array;
  }> {
    await this.settlePending();
    const slots: Array<{ name: string; size: number }> = [];
    const ranges: Array<[number, number]> = [];
    const ms: Float32Array[] = [];
    const vs: Float32Array[] = [];
    let base = 0;
    for (const sp of this.spaces) {
      const st = await sp.sharded!.shardState();
      slots.push(...sp.space.slots.map((sl) => ({ name: sl.name, size: sl.size })));
      ranges.push(...st.ranges.map(([start, length]): [number, number] => [base + start, length]));
      ms.push(st.m);
      vs.push(st.v);
      base += sp.space.total;
    }
    const join = (parts: Float32Array[]) => {
      const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
      let at = 0;
      for (const x of parts) {
        out.set(x, at);
        at += x.length;
      }
      return out;
    };
    return { slots, ranges, m: join(ms), v: join(vs) };
  }

  /** Weights and (unless sharded: see `shardState`) AdamW moments by name, for a checkpoint. */
  async state(): Promise<{
    weights: [string, Float32Array][];
    moments: [string, Float32Array][];
    optimizerStep: number;
  }> {
    await this.settlePending();
    const weights: [string, Float32Array][] = [];
    for (const [n, v] of this.params) weights.push([n, new Float32Array((await v.data()) as Float32Array)]);
    if (this.sharded) return { weights, moments: [], optimizerStep: this.spaces[0].sharded!.step };
    const s = await this.optimizer.exportState();
    return { weights, moments: [...s.moments].map(([n, a]) => [n, new Float32Array(a)]), optimizerStep: s.step };
  }

  /** Restores AdamW moments (strict: every parameter of the stage needs both). */
  restore(moments: Map<string, Float32Array>, optimizerStep: number): void {
    if (this.spaces[0]?.sharded) {
      for (const sp of this.spaces) sp.sharded!.restore(moments, optimizerStep);
    } else this.optimizer.importState(this.params, { step: optimizerStep, moments });
    this.syncMirror();
  }

  dispose(): void {
    if (this.pending) {
      for (const sv of this.pending.update.saved)
        tf.dispose([sv.p, ...(sv.moments ? [sv.moments.m, sv.moments.v] : [])]);
      disposeGrads(this.pending.update.grads);
      this.pending = undefined;
    }
    this.optimizer.dispose();
    for (const sp of this.spaces) sp.sharded?.dispose();
    for (const c of this.chunks) c.range.dispose();
  }
}
