import { crossEntropy, YuanModel } from '@yuan/model';
import { accumulateGrads, AdamW, clipGrads, clipScale, disposeGrads, type GradMap } from '@yuan/train';
import { BufferMeter, tf, type TensorAttentionPlugin } from '@yuan/tensor';
import type { ProcessGroup } from '@yuan/comm';
import { allGatherParameters, flatLayout, flattenGrads, ownedRanges, ShardedAdamW, type GradientBucket, type FlatSlot } from '@yuan/parallel-zero';
import type { MicroInput, StageInit, StageStepReport } from './protocol.js';
import type { Neighbour, StageLinks } from './links.js';
import type { Instruction } from './schedule.js';

const TIED = 'model.embed_tokens.weight';

/** A sub-model and its parameters in a fixed order (names and variables). */
interface Piece {
  model: YuanModel;
  names: string[];
  vars: tf.Variable[];
}

function piece(model: YuanModel): Piece {
  return { model, names: [...model.params.keys()], vars: [...model.params.values()] };
}

/**
 * A flat gradient space reduced across the data-parallel group: the stage's parameters except the tied embedding, and
 * (when P > 1) the tied embedding alone, so its shards are laid out alike on the first and last stage and both copies
 * get bit-identical updates.
 */
interface Space {
  slots: FlatSlot[];
  total: number;
  /**
   * Ranges reduced by one reduce-scatter / all-gather each: under ZeRO 2 (`perMicro`) one per piece (the head/embedding
   * piece's and each layer's parameters in the space), else the whole space.
   */
  buckets: GradientBucket[];
  /** The buckets (indices) of each piece, for ZeRO 2's reduce-scatter as the piece's backward finishes. */
  pieceBuckets: Map<Piece, number[]>;
  /** This rank's piece of every bucket (`ownedRanges`): its shard of the space, in bucket order. */
  ranges: Array<[number, number]>;
  /** Where each bucket's owned piece starts in the shard buffer. */
  bucketAt: number[];
  /** Elements of the shard (the sum of the ranges' lengths). */
  shardLength: number;
  /** Counted in the global gradient norm (the tied embedding only on the first stage). */
  counted: boolean;
  /**
   * ZeRO 2: reduce-scattered bucket by bucket during every micro-batch's backward (not the tied embedding, which is
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
  positions: tf.Tensor2D;
  ids?: tf.Tensor2D;
  targets?: tf.Tensor2D;
  mask?: tf.Tensor2D;
  /** `full`: each layer's input (and the head's); `stage`: the stage input (none on the first stage). */
  saved: tf.Tensor3D[];
  dy?: tf.Tensor3D;
}

/** What a stage reports before its optimizer step: its part of the squared gradient norm, and (last stage) its loss. */
export interface StageNorm {
  /** Sum of squares of this stage's gradients (its shard under data parallelism; the tied embedding only on the first stage). */
  squaredNorm: number;
  /** Last stage: the mean loss of its micro-batches, each weighted 1/M of the global step (nats/token). */
  loss?: number;
}

/** The step's decision, made from every stage's (and data-parallel rank's) StageNorm: update with lr, or discard. */
export type StageDecision = { type: 'update'; lr: number; norm: number; clip: number } | { type: 'discard' };

/**
 * One pipeline stage (on a worker thread, or the main thread of a pipeline rank): its model part split into one piece per layer (so a layer can be recomputed
 * alone), plus the embedding and/or head piece; AdamW over its own parameters; an interpreter of the schedule's
 * instruction list.
 */
export class Stage {
  readonly ends?: Piece;
  readonly layers: Piece[] = [];
  readonly params = new Map<string, tf.Variable>();
  readonly optimizer: AdamW;
  private readonly first: boolean;
  private readonly last: boolean;
  private readonly micro = new Map<number, Micro>();
  private grads?: GradMap;
  private lossSum = 0;
  private report!: StageStepReport;
  private step = 0;
  private currentStep = 0;
  private readonly spaces: Space[] = [];

  constructor(
    readonly init: StageInit,
    attention: TensorAttentionPlugin<unknown>,
    private readonly links: StageLinks | undefined,
    weights?: Map<string, Float32Array>,
    private readonly group?: ProcessGroup,
  ) {
    const { config, seed, stage, stages, firstLayer, endLayer } = init;
    this.first = stage === 0;
    this.last = stage === stages - 1;
    const make = (part: { embedding: boolean; firstLayer: number; endLayer: number; head: boolean }) =>
      weights ? YuanModel.fromWeights(config, attention, weights, part) : YuanModel.init(config, attention, seed, part);
    if (this.first || this.last) this.ends = piece(make({ embedding: this.first, head: this.last, firstLayer: 0, endLayer: 0 }));
    for (let l = firstLayer; l < endLayer; l++) this.layers.push(piece(make({ embedding: false, head: false, firstLayer: l, endLayer: l + 1 })));
    for (const p of [...(this.ends ? [this.ends] : []), ...this.layers]) for (const [i, n] of p.names.entries()) this.params.set(n, p.vars[i]);
    const t = init.train;
    this.optimizer = new AdamW({ beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay });
    const dp = init.dataParallel;
    if (group && dp) {
      const separate = stages > 1 && this.params.has(TIED);
      const entries = [...this.params].map(([name, v]) => ({ name, shape: v.shape }));
      const make = (list: typeof entries, counted: boolean, perMicro: boolean) => {
        // the params map lists the ends piece first, then the layers: each piece's parameters are contiguous here
        const { slots, total } = flatLayout(list);
        const buckets: GradientBucket[] = [];
        const pieceBuckets = new Map<Piece, number[]>();
        if (perMicro) {
          for (const p of [...(this.ends ? [this.ends] : []), ...this.layers]) {
            const mine = slots.filter((sl) => p.names.includes(sl.name));
            if (mine.length === 0) continue;
            pieceBuckets.set(p, [buckets.length]);
            buckets.push({ start: mine[0].offset, length: mine.reduce((a, sl) => a + sl.size, 0) });
          }
        } else buckets.push({ start: 0, length: total });
        const ranges = ownedRanges(buckets, group.size, group.rank);
        const bucketAt: number[] = [];
        let shardLength = 0;
        for (const [, len] of ranges) {
          bucketAt.push(shardLength);
          shardLength += len;
        }
        const sharded = dp.zero > 0 ? new ShardedAdamW(slots, total, ranges, { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay }) : undefined;
        this.spaces.push({ slots, total, buckets, pieceBuckets, ranges, bucketAt, shardLength, counted, perMicro, sharded });
      };
      const rest = entries.filter((e) => !(separate && e.name === TIED));
      if (rest.length) make(rest, true, dp.zero === 2);
      if (separate) make(entries.filter((e) => e.name === TIED), this.first, false);
    }
  }

  /** Under data parallelism: the names accumulated as whole tensors between micro-batches (ZeRO 2 keeps only shards of the rest). */
  private accumulated(name: string): boolean {
    return !this.spaces.some((sp) => sp.perMicro && sp.slots.some((s) => s.name === name));
  }

  get parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
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
   * runs, minus `exclude` (gradient bytes alive then: accumulators and the micro-batch's parameter gradients, which
   * Megatron's per-parameter bytes count as static). With `profileMemory` the high-water mark inside `f` comes from
   * tf.profile's kernel-level peakBytes relative to the step start instead.
   */
  private async track<T>(f: () => T, exclude: () => number): Promise<T> {
    let out!: T;
    if (this.init.profileMemory) {
      const info = await tf.profile(() => {
        out = f();
        return undefined as never;
      });
      const peak = info.kernels.length ? info.peakBytes : tf.memory().numBytes;
      this.peak = Math.max(this.peak, peak - this.staticBytes - exclude());
      return out;
    }
    this.meter.peak = 0;
    this.meter.sampling = true;
    try {
      out = f();
    } finally {
      this.meter.sampling = false;
    }
    this.peak = Math.max(this.peak, this.meter.peak - exclude());
    return out;
  }

  private tensors(input: MicroInput): Micro {
    const shape: [number, number] = [input.rows, input.seqLength];
    return {
      input,
      positions: tf.tensor2d(input.positions, shape, 'int32'),
      ids: input.ids && tf.tensor2d(input.ids, shape, 'int32'),
      targets: input.targets && tf.tensor2d(input.targets, shape, 'int32'),
      mask: input.mask && tf.tensor2d(input.mask, shape, 'float32'),
      saved: [],
    };
  }

  private freeMicro(m: Micro): void {
    tf.dispose([m.positions, m.ids, m.targets, m.mask, m.dy, ...m.saved].filter((t) => t !== undefined) as tf.Tensor[]);
  }

  private layerOut(p: Piece, x: tf.Tensor3D, positions: tf.Tensor2D): tf.Tensor3D {
    return p.model.layers(x, { positions }).hidden;
  }

  private lossOf(h: tf.Tensor3D, m: Micro): tf.Scalar {
    return crossEntropy(this.ends!.model.head(h), m.targets!, m.mask);
  }

  /** The whole stage's forward from its input (ids on the first stage): the output [B, T, H] or the loss. */
  private stageForward(m: Micro, input: tf.Tensor3D | undefined): tf.Tensor {
    return tf.tidy(() => {
      let x = this.first ? this.ends!.model.embed(m.ids!) : input!;
      for (const p of this.layers) x = this.layerOut(p, x, m.positions);
      return this.last ? this.lossOf(x, m) : x;
    });
  }

  private forward(mb: number, received: tf.Tensor3D | undefined): tf.Tensor {
    const m = this.micro.get(mb)!;
    if (this.init.recompute === 'stage') {
      if (received) m.saved.push(received);
      return this.stageForward(m, received);
    }
    let x = this.first ? this.ends!.model.embed(m.ids!) : received!;
    for (const p of this.layers) {
      m.saved.push(x);
      x = this.layerOut(p, x, m.positions);
    }
    if (!this.last) return x;
    m.saved.push(x);
    return tf.tidy(() => this.lossOf(x, m));
  }

  /** Gradients of `f` (a tensor, or the loss when `dy` is undefined) for `xs` and a piece's variables. */
  private grad(f: () => tf.Tensor, x: tf.Tensor | undefined, pieces: Piece[], dy: tf.Tensor | undefined, into: GradMap): tf.Tensor3D | undefined {
    const vars = pieces.flatMap((p) => p.vars);
    const names = pieces.flatMap((p) => p.names);
    const xs = x ? [x, ...vars] : vars;
    const { value, grads } = tf.engine().gradients(f, xs, dy as never, true);
    value.dispose();
    const off = x ? 1 : 0;
    for (const [i, n] of names.entries()) {
      const g = grads[i + off] ?? tf.zerosLike(vars[i]);
      const prev = into.get(n);
      if (prev) {
        into.set(n, tf.add(prev, g));
        prev.dispose();
        g.dispose();
      } else into.set(n, g);
    }
    return x ? (grads[0] as tf.Tensor3D) : undefined;
  }

  /** Backward of one micro-batch: its parameter gradients (accumulated × 1/M) and dL/d(input) unless first. */
  private async backward(mb: number): Promise<tf.Tensor3D | undefined> {
    const m = this.micro.get(mb)!;
    const g: GradMap = new Map();
    const gradBytes = () => this.accumulatorBytes() + this.bytesOf(g.values());
    let dx: tf.Tensor3D | undefined;
    if (this.init.recompute === 'stage') {
      const input = this.first ? undefined : m.saved[0];
      const pieces = [...(this.ends ? [this.ends] : []), ...this.layers];
      dx = await this.track(() => this.grad(() => this.stageForward(m, input), input, pieces, this.last ? undefined : m.dy, g), gradBytes);
      await this.reduceBuckets(pieces, g);
    } else {
      let dy = m.dy;
      let k = m.saved.length;
      if (this.last) {
        const h = m.saved[--k];
        dy = await this.track(() => this.grad(() => this.lossOf(h, m), h, [this.ends!], undefined, g), gradBytes);
        await this.reduceBuckets([this.ends!], g);
      }
      for (let l = this.layers.length - 1; l >= 0; l--) {
        const x = m.saved[--k];
        const p = this.layers[l];
        const upstream = dy;
        const next = await this.track(() => this.grad(() => this.layerOut(p, x, m.positions), x, [p], upstream, g), gradBytes);
        await this.reduceBuckets([p], g);
        if (dy !== m.dy) dy?.dispose();
        dy = next;
      }
      if (this.first) {
        const upstream = dy;
        await this.track(() => this.grad(() => this.ends!.model.embed(m.ids!), undefined, [this.ends!], upstream, g), gradBytes);
        await this.reduceBuckets([this.ends!], g);
        if (dy !== m.dy) dy?.dispose();
      } else dx = dy;
    }
    const scale = 1 / this.init.globalMicrobatches;
    // the same accumulation as the single-process trainer: running sum of g × 1/M in micro-batch order
    const ordered: GradMap = new Map([...this.params.keys()].filter((n) => this.accumulated(n)).map((n) => [n, g.get(n)!]));
    if (ordered.size) this.grads = accumulateGrads(this.grads, ordered, scale);
    return dx;
  }

  /**
   * ZeRO 2: the gradients in `g` of `pieces`' buckets (× 1/M) reduce-scattered now, as their backward has just produced
   * them, this rank's pieces added to the space's shard, and the tensors freed; so with `full` recompute a stage holds
   * besides the 1/D shard one piece's unreduced gradients at a time (with `stage` recompute one backward produces all
   * pieces' gradients at once). A piece whose gradient comes twice (the tied embedding with one stage: head, then
   * lookup) is reduced twice; the sums add up the same. `gradientInFlightBytes` records the most held at once.
   */
  private async reduceBuckets(pieces: Piece[], g: GradMap): Promise<void> {
    const scale = 1 / this.init.globalMicrobatches;
    // every bucket of `pieces` exists now, unreduced
    let held = 0;
    for (const sp of this.spaces) if (sp.perMicro) for (const p of pieces) for (const b of sp.pieceBuckets.get(p) ?? []) held += 4 * sp.buckets[b].length;
    this.report.gradientInFlightBytes = Math.max(this.report.gradientInFlightBytes, held);
    for (const sp of this.spaces) {
      if (!sp.perMicro) continue;
      for (const p of pieces) {
        for (const b of sp.pieceBuckets.get(p) ?? []) {
          const { start, length } = sp.buckets[b];
          const flat = new Float32Array(length);
          for (const sl of sp.slots) {
            if (sl.offset < start || sl.offset >= start + length) continue;
            const t = g.get(sl.name)!;
            flat.set(t.dataSync() as Float32Array, sl.offset - start);
            t.dispose();
            g.delete(sl.name);
          }
          for (let k = 0; k < flat.length; k++) flat[k] *= scale;
          const part = await this.group!.reduceScatter(flat);
          sp.reduced ??= new Float32Array(sp.shardLength);
          const at = sp.bucketAt[b];
          for (let k = 0; k < part.length; k++) sp.reduced[at + k] += part[k];
        }
      }
    }
  }

  private tag(kind: string, mb: number): string {
    return `${this.currentStep}:${kind}:${mb}`;
  }

  private async recv(from: Neighbour, tag: string): Promise<tf.Tensor3D> {
    const t0 = performance.now();
    const t = await this.links!.recv(from, tag);
    this.report.waitMs += performance.now() - t0;
    return t as tf.Tensor3D;
  }

  private maybeFault(): void {
    const f = this.init.fault;
    if (!f || f.stage !== this.init.stage || f.step !== this.currentStep) return;
    if (f.kind === 'throw') throw new Error(`injected fault in stage ${f.stage}`);
    if (f.kind === 'exit') process.exit(3);
    const hog: number[][] = [];
    for (;;) hog.push(new Array(1 << 20).fill(hog.length));
  }

  /**
   * Runs one optimizer step's instruction list over `inputs` (this stage's fields of each micro-batch); before the
   * optimizer step it hands its StageNorm to `decide` (a coordinator's answer, or an all-reduce across the ranks) and
   * updates or discards as told.
   */
  async trainStep(step: number, inputs: MicroInput[], decide: (norm: StageNorm) => Promise<StageDecision>): Promise<void> {
    this.currentStep = step;
    const t0 = performance.now();
    this.staticBytes = tf.memory().numBytes;
    this.peak = 0;
    this.meter.start();
    this.lossSum = 0;
    this.report = { stage: this.init.stage, activationPeakBytes: 0, staticBytes: this.staticBytes, tensors: tf.memory().numTensors, gradientBytes: this.parameterCount * 4, gradientInFlightBytes: 0, optimizerBytes: this.optimizerBytes, maxInFlight: 0, stepMs: 0, waitMs: 0 };
    const program: Instruction[] = this.init.program;
    const received = new Map<number, tf.Tensor3D>();
    const outputs = new Map<number, tf.Tensor>();
    const dxs = new Map<number, tf.Tensor3D>();
    try {
      for (const ins of program) {
        switch (ins.kind) {
          case 'loadMicroBatch':
            if (!this.micro.has(ins.mb)) this.micro.set(ins.mb, this.tensors(inputs[ins.mb]));
            break;
          case 'recvActivation':
            received.set(ins.mb, await this.recv('prev', this.tag('act', ins.mb)));
            break;
          case 'forward': {
            if (!this.micro.has(ins.mb)) this.micro.set(ins.mb, this.tensors(inputs[ins.mb]));
            this.maybeFault();
            const r = received.get(ins.mb);
            received.delete(ins.mb);
            outputs.set(ins.mb, await this.track(() => this.forward(ins.mb, r), () => this.accumulatorBytes()));
            this.report.maxInFlight = Math.max(this.report.maxInFlight, this.micro.size);
            if (this.last) {
              const loss = outputs.get(ins.mb)!;
              this.lossSum += loss.dataSync()[0] / this.init.globalMicrobatches;
              loss.dispose();
              outputs.delete(ins.mb);
            }
            break;
          }
          case 'sendActivation': {
            const y = outputs.get(ins.mb)!;
            await this.links!.send('next', this.tag('act', ins.mb), y);
            y.dispose();
            outputs.delete(ins.mb);
            break;
          }
          case 'recvGradient':
            this.micro.get(ins.mb)!.dy = await this.recv('next', this.tag('grad', ins.mb));
            break;
          case 'backward': {
            const dx = await this.backward(ins.mb);
            if (dx) dxs.set(ins.mb, dx);
            this.freeMicro(this.micro.get(ins.mb)!);
            this.micro.delete(ins.mb);
            break;
          }
          case 'sendGradient': {
            const dx = dxs.get(ins.mb)!;
            await this.links!.send('prev', this.tag('grad', ins.mb), dx);
            dx.dispose();
            dxs.delete(ins.mb);
            break;
          }
          case 'reduceTiedGradients': {
            // Megatron `_allreduce_word_embedding_grads`: the first and last stage add each other's embedding
            // gradient, so both copies get the same update (a + b = b + a exactly in IEEE arithmetic).
            const mine = this.grads!.get(TIED)!;
            await this.links!.send('tied', this.tag('tied', 0), mine);
            const other = await this.recv('tied', this.tag('tied', 0));
            this.grads!.set(TIED, tf.add(mine, other));
            tf.dispose([mine, other]);
            break;
          }
          case 'optimizerStep': {
            if (this.group) {
              await this.dataParallelStep(step, decide);
              this.report.stepMs = performance.now() - t0;
              break;
            }
            this.report.stepMs = performance.now() - t0;
            // the tied embedding counts once in the global norm: on the first stage only
            const counted = [...this.grads!].filter(([n]) => !(n === TIED && this.last && !this.first)).map(([, g]) => g);
            const sq = counted.length ? tf.tidy(() => tf.addN(counted.map((g) => tf.sum(tf.square(g))))) : tf.scalar(0);
            const squaredNorm = sq.dataSync()[0];
            sq.dispose();
            const d = await decide({ squaredNorm, loss: this.last ? this.lossSum : undefined });
            if (d.type === 'update') {
              clipGrads(this.grads!, d.norm, d.clip);
              this.optimizer.update(this.params, this.grads!, d.lr);
              this.step = step;
            }
            disposeGrads(this.grads);
            this.grads = undefined;
            break;
          }
        }
      }
    } finally {
      for (const sp of this.spaces) sp.reduced = undefined;
      for (const m of this.micro.values()) this.freeMicro(m);
      this.micro.clear();
      tf.dispose([...received.values(), ...outputs.values(), ...dxs.values()]);
      disposeGrads(this.grads);
      this.grads = undefined;
    }
    this.meter.stop();
    this.report.activationPeakBytes = Math.max(0, Math.round(this.peak));
  }

  /**
   * The optimizer step under data parallelism: each space's gradients reduced across the stage's data-parallel group
   * (ZeRO 0 all-reduce; 1 reduce-scatter; 2 the shards reduced during the backwards, the tied embedding reduce-scattered now); the
   * squared norm of this rank's shard goes to the coordinator, which sums it over stages and ranks; on `update` every
   * rank clips with the same global norm and updates (ZeRO 0: replicated AdamW; 1/2: its shard, then all-gather).
   */
  private async dataParallelStep(step: number, decide: (norm: StageNorm) => Promise<StageDecision>): Promise<void> {
    const zero = this.init.dataParallel!.zero;
    let squaredNorm = 0;
    for (const sp of this.spaces) {
      if (!sp.perMicro) {
        const flat = flattenGrads(this.grads!, sp.slots, sp.total);
        sp.reduced = zero === 0 ? await this.group!.allReduce(flat) : (await this.group!.reduceScatter(flat)).slice();
      }
      if (!sp.counted) continue;
      // each rank counts its own shard (ZeRO 0: its part of the all-reduced space), so the world's sum is the norm
      const own = zero === 0 ? sp.ranges.map(([start, length]) => sp.reduced!.subarray(start, start + length)) : [sp.reduced!];
      for (const part of own) for (let k = 0; k < part.length; k++) squaredNorm += part[k] * part[k];
    }
    this.report.gradientBytes = 4 * this.spaces.reduce((a, sp) => a + (sp.perMicro ? sp.shardLength : sp.total), 0);
    disposeGrads(this.grads);
    this.grads = undefined;
    const d = await decide({ squaredNorm, loss: this.last ? this.lossSum : undefined });
    if (d.type !== 'update') return;
    const scale = clipScale(d.norm, d.clip);
    if (zero === 0) {
      const grads: GradMap = new Map();
      for (const sp of this.spaces) {
        for (const sl of sp.slots) {
          const g = sp.reduced!.subarray(sl.offset, sl.offset + sl.size);
          grads.set(sl.name, tf.tidy(() => (scale === 1 ? tf.tensor(g, sl.shape) : tf.mul(tf.tensor(g, sl.shape), scale))));
        }
      }
      try {
        this.optimizer.update(this.params, grads, d.lr);
      } finally {
        disposeGrads(grads);
      }
    } else {
      for (const sp of this.spaces) {
        const all = new Float32Array(sp.total);
        await sp.sharded!.update(this.params, sp.reduced!, scale, d.lr, all);
        await allGatherParameters(this.group!, all, sp.slots, this.params, sp.buckets);
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
    for (const [i, input] of inputs.entries()) {
      const m = this.tensors(input);
      const tag = `eval${id}:act:${i}`;
      const h = this.first ? undefined : ((await this.links!.recv('prev', tag)) as tf.Tensor3D);
      const out = this.stageForward(m, h);
      if (this.last) losses.push(out.dataSync()[0]);
      else await this.links!.send('next', tag, out);
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
  async shardState(): Promise<{ slots: Array<{ name: string; size: number }>; ranges: Array<[number, number]>; m: Float32Array; v: Float32Array }> {
    const slots: Array<{ name: string; size: number }> = [];
    const ranges: Array<[number, number]> = [];
    const ms: Float32Array[] = [];
    const vs: Float32Array[] = [];
    let base = 0;
    for (const sp of this.spaces) {
      const st = await sp.sharded!.shardState();
      slots.push(...sp.slots.map((sl) => ({ name: sl.name, size: sl.size })));
      ranges.push(...st.ranges.map(([start, length]): [number, number] => [base + start, length]));
      ms.push(st.m);
      vs.push(st.v);
      base += sp.total;
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
  async state(): Promise<{ weights: [string, Float32Array][]; moments: [string, Float32Array][]; optimizerStep: number }> {
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
    for (const v of this.params.values()) v.dispose();
  }
}

