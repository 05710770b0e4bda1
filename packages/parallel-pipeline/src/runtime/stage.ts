import { YuanError } from '@yuan/core';
import {
  accumulateGrads,
  AdamW,
  clipGrads,
  clipScale,
  disposeGrads,
  LayerRange,
  type GradMap,
  type GradientStep,
  type KeptActivations,
  type LayerwiseGroup,
  type RangeBatch,
} from '@yuan/train';
import { BufferMeter, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';
import { GradientSpace, ShardedAdamW } from '@yuan/parallel-zero';
import type { Instruction } from '@yuan/plan';
import type { RuntimeOp } from './schedule.js';
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

/** Per-micro-batch tensors of the step in flight. */
interface Micro {
  input: MicroInput;
  batch: RangeBatch & { positions: tf.Tensor2D };
  /** `none`/`selective`/`full`: what the range's forward kept for the backward (`LayerRange.forwardKeeping`). */
  kept?: KeptActivations;
  /** The received stage input (none on the first stage): `full` keeps it as layer 0's input, `stage` recomputes from it. */
  received?: tf.Tensor3D;
  dy?: tf.Tensor3D;
}

/** What one optimizer step's program works with besides the stage's own state. */
interface StepRun {
  step: number;
  t0: number;
  inputs: MicroInput[];
  decide: (norm: StageNorm) => Promise<StageDecision>;
  /** Activations received and not yet forwarded, by micro-batch. */
  received: Map<number, tf.Tensor3D>;
  /** Outputs forwarded and not yet sent. */
  outputs: Map<number, tf.Tensor>;
  /** dL/d(input) computed and not yet sent. */
  dxs: Map<number, tf.Tensor3D>;
  /** The range's layer-forward count when the step started. */
  forwardsBefore: number;
}

/** The interpreter's handler of each instruction kind it runs (`stagePrograms` refuses split backwards). */
type Handlers = {
  [K in RuntimeOp]: (ins: Extract<Instruction, { op: K }>, run: StepRun) => Promise<void> | void;
};

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
  readonly range: LayerRange;
  readonly params: Map<string, tf.Variable>;
  readonly optimizer: AdamW;
  private readonly first: boolean;
  private readonly last: boolean;
  private readonly micro = new Map<number, Micro>();
  private grads?: GradMap;
  private lossSum = 0;
  private report!: StageStepReport;
  private step = 0;
  private currentStep = 0;
  private readonly spaces: StageSpace[] = [];

  constructor(
    readonly init: StageInit,
    attention: TensorAttentionPlugin<unknown>,
    private readonly links: StageLinks | undefined,
    weights?: Map<string, Float32Array>,
    private readonly group?: ProcessGroup,
    /** Test seam (`StageHooks`): installed only by the test-only `testing` entry. */
    private readonly hooks?: StageHooks,
  ) {
    const { config, seed, stage, stages, firstLayer, endLayer } = init;
    this.first = stage === 0;
    this.last = stage === stages - 1;
    const part = { embedding: this.first, head: this.last, firstLayer, endLayer };
    this.range = weights
      ? LayerRange.fromWeights(config, attention, weights, part)
      : LayerRange.init(config, attention, seed, part);
    this.params = this.range.params;
    const t = init.train;
    const adam = { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay };
    this.optimizer = new AdamW(adam);
    const dp = init.dataParallel;
    if (group && dp) {
      const separate = stages > 1 && this.params.has(TIED);
      const entry = (name: string) => ({ name, shape: this.params.get(name)!.shape });
      // the sub-parts in params order (embedding/head first, then layer by layer): each one's parameters are contiguous
      const parts = [...(this.range.ends ? [this.range.ends] : []), ...this.range.layers]
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
    return this.range.parameterCount;
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

  private tensors(input: MicroInput): Micro {
    const shape: [number, number] = [input.rows, input.seqLength];
    return {
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
    if (m.kept) this.range.release(m.kept, m.received);
    tf.dispose([positions, ids, targets, mask, m.received, m.dy].filter((t) => t !== undefined) as tf.Tensor[]);
  }

  /** Micro-batch `mb` of the step, its tensors made on first use. */
  private microOf(mb: number, run: StepRun): Micro {
    let m = this.micro.get(mb);
    if (!m) {
      const input = run.inputs[mb];
      if (!input)
        throw new YuanError(
          'pipeline',
          `stage ${this.init.stage}: the schedule names micro-batch ${mb}, but the step has ${run.inputs.length}`,
        );
      m = this.tensors(input);
      this.micro.set(mb, m);
    }
    return m;
  }

  /** The forward of one micro-batch: the output [B, T, H] to send, or (last stage) the loss. */
  private forward(m: Micro, received: tf.Tensor3D | undefined): tf.Tensor {
    const mode = this.init.recompute;
    if (mode === 'stage') {
      m.received = received;
      return this.range.forward(m.batch, received);
    }
    const { result, ...kept } = this.range.forwardKeeping(m.batch, received, mode);
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
    const scale = 1 / this.init.globalMicrobatches;
    // this micro-batch's gradients of the parameters accumulated as whole tensors
    const g: GradMap = new Map();
    const gradBytes = (fresh: GradMap) =>
      this.accumulatorBytes() + this.bytesOf(g.values()) + this.bytesOf(fresh.values());
    const step = (compute: () => GradientStep) => this.track(compute, (r) => gradBytes(r.grads));
    const onGrads = async (_group: LayerwiseGroup, grads: GradMap) => {
      const toReduce = new Map<GradientSpace, GradMap>();
      for (const [n, t] of grads) {
        const space = this.perMicroSpace(n);
        if (space) toReduce.set(space, (toReduce.get(space) ?? new Map()).set(n, t));
        else {
          // a gradient that comes twice (the tied embedding with one stage: head, then lookup) is summed
          const prev = g.get(n);
          g.set(n, prev ? tf.add(prev, t) : t);
          if (prev) tf.dispose([prev, t]);
        }
      }
      for (const [space, part] of toReduce) await space.reduceGroup(part, scale);
    };
    let dx: tf.Tensor3D | undefined;
    try {
      const dy = this.last ? undefined : m.dy;
      if (this.init.recompute === 'stage')
        dx = (await this.range.backwardWhole(m.batch, m.received, dy, onGrads, step)).dx;
      else dx = (await this.range.backward(m.batch, m.kept!, dy, onGrads, step)).dx;
      for (const sp of this.spaces) if (sp.perMicro) await sp.space.drain();
    } catch (e) {
      dx?.dispose();
      disposeGrads(g);
      for (const sp of this.spaces) if (sp.perMicro) await sp.space.settle();
      throw e;
    }
    const ordered: GradMap = new Map([...this.params.keys()].filter((n) => g.has(n)).map((n) => [n, g.get(n)!]));
    if (ordered.size) this.grads = accumulateGrads(this.grads, ordered, scale);
    return dx;
  }

  private tag(kind: string, mb: number): string {
    return `${this.currentStep}:${kind}:${mb}`;
  }

  private async recv(from: number, tag: string): Promise<tf.Tensor3D> {
    const t0 = performance.now();
    const t = await this.links!.recv(from, tag);
    this.report.waitMs += performance.now() - t0;
    return t as tf.Tensor3D;
  }

  /** The interpreter: one handler per instruction kind (the planner's `Instruction`). */
  private readonly handlers: Handlers = {
    load: (ins, run) => {
      this.microOf(ins.microbatch, run);
    },
    recvActivation: async (ins, run) => {
      run.received.set(ins.microbatch, await this.recv(ins.from, this.tag('act', ins.microbatch)));
    },
    forward: async (ins, run) => {
      const mb = ins.microbatch;
      const m = this.microOf(mb, run);
      this.hooks?.beforeForward?.({
        stage: this.init.stage,
        dataRank: this.init.dataParallel?.rank ?? 0,
        step: run.step,
        microbatch: mb,
      });
      const r = run.received.get(mb);
      run.received.delete(mb);
      const out = await this.track(
        () => this.forward(m, r),
        () => this.accumulatorBytes(),
      );
      this.report.maxInFlight = Math.max(this.report.maxInFlight, this.micro.size);
      if (this.last) {
        this.lossSum += out.dataSync()[0] / this.init.globalMicrobatches;
        out.dispose();
      } else run.outputs.set(mb, out);
    },
    sendActivation: async (ins, run) => {
      const y = run.outputs.get(ins.microbatch)!;
      await this.links!.send(ins.to, this.tag('act', ins.microbatch), y);
      y.dispose();
      run.outputs.delete(ins.microbatch);
    },
    recvGradient: async (ins, run) => {
      this.microOf(ins.microbatch, run).dy = await this.recv(ins.from, this.tag('grad', ins.microbatch));
    },
    backward: async (ins, run) => {
      const m = this.microOf(ins.microbatch, run);
      const dx = await this.backward(m);
      if (dx) run.dxs.set(ins.microbatch, dx);
      this.freeMicro(m);
      this.micro.delete(ins.microbatch);
    },
    sendGradient: async (ins, run) => {
      const dx = run.dxs.get(ins.microbatch)!;
      await this.links!.send(ins.to, this.tag('grad', ins.microbatch), dx);
      dx.dispose();
      run.dxs.delete(ins.microbatch);
    },
    reduceTiedGradients: async (ins) => {
      // Megatron `_allreduce_word_embedding_grads`: the first and last stage add each other's embedding gradient, so
      // both copies get the same update (a + b = b + a exactly in IEEE arithmetic)
      const others = [...new Set(ins.stages)].filter((s) => s !== this.init.stage);
      if (others.length !== 1 || !ins.stages.includes(this.init.stage)) {
        throw new YuanError(
          'pipeline',
          `stage ${this.init.stage}: reduceTiedGradients over stages ${ins.stages.join(', ')} is not this stage and one other`,
        );
      }
      const mine = this.grads!.get(TIED)!;
      await this.links!.send(others[0], this.tag('tied', 0), mine);
      const other = await this.recv(others[0], this.tag('tied', 0));
      this.grads!.set(TIED, tf.add(mine, other));
      tf.dispose([mine, other]);
    },
    optimizerStep: async (_ins, run) => {
      if (this.group) {
        await this.dataParallelStep(run.step, run.decide, this.range.layerForwards - run.forwardsBefore);
        this.report.stepMs = performance.now() - run.t0;
        return;
      }
      this.report.stepMs = performance.now() - run.t0;
      // the tied embedding counts once in the global norm: on the first stage only
      const counted = [...this.grads!].filter(([n]) => !(n === TIED && this.last && !this.first)).map(([, g]) => g);
      const sq = counted.length ? tf.tidy(() => tf.addN(counted.map((g) => tf.sum(tf.square(g))))) : tf.scalar(0);
      const squaredNorm = sq.dataSync()[0];
      sq.dispose();
      const d = await run.decide({
        squaredNorm,
        loss: this.last ? this.lossSum : undefined,
        layerForwards: this.range.layerForwards - run.forwardsBefore,
      });
      if (d.type === 'update') {
        clipGrads(this.grads!, d.norm, d.clip);
        this.optimizer.update(this.params, this.grads!, d.lr);
        this.step = run.step;
      }
      disposeGrads(this.grads);
      this.grads = undefined;
    },
  };

  /**
   * Runs one optimizer step's instruction list over `inputs` (this stage's fields of each micro-batch); before the
   * optimizer step it hands its StageNorm to `decide` (a coordinator's answer, or an all-reduce across the ranks) and
   * updates or discards as told.
   */
  async trainStep(
    step: number,
    inputs: MicroInput[],
    decide: (norm: StageNorm) => Promise<StageDecision>,
  ): Promise<void> {
    this.currentStep = step;
    const run: StepRun = {
      step,
      t0: performance.now(),
      inputs,
      decide,
      received: new Map(),
      outputs: new Map(),
      dxs: new Map(),
      forwardsBefore: this.range.layerForwards,
    };
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
    };
    try {
      for (const ins of this.init.program) {
        const handle = this.handlers[ins.op as RuntimeOp] as (ins: Instruction, run: StepRun) => Promise<void> | void;
        await handle(ins, run);
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
    }
    this.meter.stop();
    this.report.activationPeakBytes = Math.max(0, Math.round(this.peak));
    this.report.layerForwards = this.range.layerForwards - run.forwardsBefore;
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
    this.step = step;
  }

  /** The report of the last step. */
  get lastReport(): StageStepReport {
    return this.report;
  }

  /** Forward-only losses of evaluation batches (the last stage returns them). */
  async evaluate(id: number, inputs: MicroInput[]): Promise<number[] | undefined> {
    const losses: number[] = [];
    const { stage } = this.init;
    for (const [i, input] of inputs.entries()) {
      const m = this.tensors(input);
      const tag = `eval${id}:act:${i}`;
      const h = this.first ? undefined : ((await this.links!.recv(stage - 1, tag)) as tf.Tensor3D);
      const out = this.range.forward(m.batch, h);
      if (this.last) losses.push(out.dataSync()[0]);
      else await this.links!.send(stage + 1, tag, out);
      tf.dispose([out, ...(h ? [h] : [])]);
      this.freeMicro(m);
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
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const sp of this.spaces) sp.sharded?.dispose();
    this.range.dispose();
  }
}
