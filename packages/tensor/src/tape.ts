import { tf } from './tf.js';
import { setAttentionCoreRecompute } from './fused.js';

/** One recorded op of TensorFlow.js's autodiff tape (tfjs-core 4.22 `TapeNode`). */
interface Node {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: tf.Tensor[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineTapeInternals {
  startTape(): void;
  endTape(): void;
  state: {
    gradientDepth: number;
    activeTape: Node[] | null;
    tensorInfo: WeakMap<object, { bytes: number }>;
  };
}

/** A node of the kept tape: only its inputs reached from the xs (`inputs`), the saved tensors its gradient reads. */
interface KeptNode {
  node: Node;
  inputs: Array<[string, tf.Tensor]>;
}

/** A node whose gradients for some xs were put off by `backward(dy, { defer })`: its upstream gradients stay alive. */
interface DeferredNode {
  node: Node;
  dys: tf.Tensor[];
  names: string[];
}

/** Options of `recordTape`. */
export interface RecordOptions {
  /**
   * Megatron's selective recompute: while recording, the op-by-op attention core (`causalAttention` without the fused
   * kernel) keeps only Q, K and V and recomputes its scores and softmax [B, A, S, S] inside the backward. The fused
   * kernel already keeps only its output and row log-sum-exp, so on `native` this changes nothing. Default false.
   */
  selective?: boolean;
  /**
   * Free, when recording ends, the saved tensors that the kept ops' gradients never read for the recorded xs
   * (`SAVED_READS`: a frozen linear's input, tensors saved only for their shape). Default false: keep what
   * TensorFlow.js saved, which the pipeline planner's activation formula (@yuan/parallel-pipeline) models; an adapter
   * run over a frozen base prunes.
   */
  prune?: boolean;
}

/** Options of `KeptTape.backward`. */
export interface BackwardOptions {
  /**
   * Indices into the recorded xs whose gradients are put off until `backwardDeferred()` (a zero-bubble schedule's
   * weight gradient after the input gradient): the ops that feed them keep their upstream gradients and saved tensors
   * until then. Default: none.
   */
  defer?: readonly number[];
}

/**
 * Which saved tensors a kernel's registered gradient (tfjs-core 4.22 `gradients/*_grad.ts`) reads for each input:
 * the indices into its `saved`, by input name. Kernels not listed keep everything they saved. Shape-only gradients
 * (Reshape, Slice, Concat, Pack, Add, Sub read only `shape`, which a disposed tensor still has) read none; a product's
 * input gradient reads the other factor only (BatchMatMul `a: dy·b`, `b: a·dy`; Multiply `a: dy·b`, `b: dy·a`).
 */
const SAVED_READS: Record<string, (input: string) => readonly number[]> = {
  Reshape: () => [],
  Slice: () => [],
  Concat: () => [],
  Pack: () => [],
  Add: () => [],
  Sub: () => [],
  BatchMatMul: (input) => (input === 'a' ? [1] : [0]),
  Multiply: (input) => (input === 'a' ? [1] : [0]),
};

/**
 * Frees the saved tensors of a kept op that the gradients of its kept inputs never read (`SAVED_READS`): e.g. the
 * input x of a frozen linear x·Wᵀ (only dW reads it, and W gets no gradient when it is not a recorded x), or a
 * reshape's input, saved for its shape. The saved array keeps its (disposed) entries, so indices still line up.
 */
function pruneSaved(node: Node, inputs: ReadonlyArray<[string, tf.Tensor]>): void {
  const reads = SAVED_READS[node.kernelName];
  if (!reads || !node.saved) return;
  const needed = new Set(inputs.flatMap(([name]) => reads(name)));
  for (const [i, t] of node.saved.entries()) if (!needed.has(i)) t.dispose();
}

const isTensorShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((n, i) => n === b[i]);

/**
 * A forward recorded once on TensorFlow.js's autodiff tape and kept across calls: the ops between the xs and the value,
 * each with the tensors its gradient reads ("saved": clones sharing the forward's buffers), so that its backward can
 * run later — after other forwards and backwards — with an upstream gradient, without running the forward again.
 * This splits tfjs-core's `engine.gradients` (record and backpropagate in one call) into `recordTape` and `backward`.
 * Unlike `engine.gradients`, the backward frees each op's saved tensors and each intermediate gradient as soon as the
 * op's gradients are computed, so its working set is the current op's, not the whole tape's. Ops not between an x and
 * the value are dropped (their saved tensors freed) when recording ends. One backward per tape; `dispose` frees what
 * is still kept (a tape dropped unused).
 */
export class KeptTape {
  private nodes: KeptNode[] | undefined;
  private deferred: DeferredNode[] = [];
  private deferredXs = new Set<number>();
  private grads = new Map<number, tf.Tensor>();

  /** Use `recordTape`. */
  constructor(
    /** The recorded function's value (the caller owns it; the backward only needs its identity). */
    readonly value: tf.Tensor,
    private readonly xs: readonly tf.Tensor[],
    nodes: KeptNode[],
  ) {
    this.nodes = nodes;
  }

  /** Ops kept for the backward. */
  get ops(): number {
    return this.nodes?.length ?? 0;
  }

  /** Bytes of the distinct buffers the kept ops' saved tensors hold (a buffer shared by several counts once). */
  get keptBytes(): number {
    const info = (tf.engine() as unknown as EngineTapeInternals).state.tensorInfo;
    const seen = new Set<object>();
    let bytes = 0;
    for (const { node } of this.nodes ?? []) {
      for (const t of node.saved ?? []) {
        if (t.isDisposed || seen.has(t.dataId)) continue;
        seen.add(t.dataId);
        bytes += info.get(t.dataId)?.bytes ?? 0;
      }
    }
    return bytes;
  }

  /**
   * Backpropagates `dy` (dL/d value; default ones, for a scalar loss; not disposed here) through the kept ops, the
   * last first, and returns the gradient of each recorded x in order (undefined where the value does not depend on it,
   * or where `options.defer` puts it off). The caller owns the gradients. Errors: a second backward, an op without a
   * registered gradient, a gradient of the wrong dtype or shape (naming the op).
   */
  backward(dy?: tf.Tensor, options: BackwardOptions = {}): Array<tf.Tensor | undefined> {
    const nodes = this.nodes;
    if (!nodes) throw new Error('KeptTape.backward: this tape was already backpropagated or disposed');
    this.nodes = undefined;
    const xIds = new Set(this.xs.map((x) => x.id));
    const defer = new Set((options.defer ?? []).map((i) => this.xs[i].id));
    this.deferredXs = defer;
    const external = new Set<tf.Tensor>();
    const grads = this.grads;
    if (dy) {
      if (!isTensorShape(dy.shape, this.value.shape))
        throw new Error(`KeptTape.backward: dy has shape [${dy.shape}], the value [${this.value.shape}]`);
      external.add(dy);
      grads.set(this.value.id, dy);
    } else grads.set(this.value.id, tf.onesLike(this.value));
    try {
      for (let i = nodes.length - 1; i >= 0; i--) {
        const { node, inputs } = nodes[i];
        const dys = node.outputs.map((o) => grads.get(o.id) ?? null) as tf.Tensor[];
        for (const o of node.outputs) if (!xIds.has(o.id)) grads.delete(o.id);
        const now = inputs.filter(([, x]) => !defer.has(x.id));
        const later = inputs.filter(([, x]) => defer.has(x.id));
        if (dys.every((d) => d === null)) {
          tf.dispose(node.saved ?? []);
          continue;
        }
        this.apply(node, dys, now, external);
        if (later.length) {
          // the caller's dy stays the caller's: the deferred op holds a view of it
          const own = dys.map((d) => (d !== null && external.has(d) ? tf.clone(d) : d));
          this.deferred.push({ node, dys: own, names: later.map(([n]) => n) });
        } else {
          tf.dispose(dys.filter((d) => d !== null && !external.has(d)));
          tf.dispose(node.saved ?? []);
        }
      }
    } catch (e) {
      this.disposeRest(nodes);
      throw e;
    }
    const out = this.xs.map((x) => (defer.has(x.id) ? undefined : grads.get(x.id)));
    for (const [id, g] of grads) if (!defer.has(id) && !external.has(g) && !out.includes(g)) g.dispose();
    for (const x of this.xs) if (!defer.has(x.id)) grads.delete(x.id);
    if (!this.deferred.length) grads.clear();
    return out;
  }

  /**
   * The gradients put off by `backward(dy, { defer })`, for every recorded x (undefined for those not deferred or not
   * reached); frees what the deferred ops kept. The caller owns the gradients.
   */
  backwardDeferred(): Array<tf.Tensor | undefined> {
    const deferred = this.deferred;
    this.deferred = [];
    try {
      for (const { node, dys, names } of deferred) {
        this.apply(
          node,
          dys,
          names.map((n) => [n, node.inputs[n]]),
          new Set(),
        );
      }
    } finally {
      for (const { node, dys } of deferred) tf.dispose([...(node.saved ?? []), ...dys.filter((d) => d !== null)]);
    }
    const out = this.xs.map((x) => (this.deferredXs.has(x.id) ? this.grads.get(x.id) : undefined));
    this.grads.clear();
    return out;
  }

  /** Computes `node`'s gradients for `inputs` from its upstream gradients and adds them to the accumulated ones. */
  private apply(node: Node, dys: tf.Tensor[], inputs: Array<[string, tf.Tensor]>, external: Set<tf.Tensor>): void {
    if (!inputs.length) return;
    if (!node.gradient) throw new Error(`KeptTape.backward: no gradient registered for op ${node.kernelName}`);
    const live = new Set<tf.Tensor>([...dys, ...this.grads.values(), ...external]);
    const dxs = tf.tidy(() => {
      const fns = node.gradient!(dys);
      return inputs.map(([name]) => {
        const fn = fns[name];
        if (!fn) throw new Error(`KeptTape.backward: op ${node.kernelName} has no gradient for its input ${name}`);
        return fn();
      });
    });
    for (const [k, [name, x]] of inputs.entries()) {
      // a gradient function may hand back its upstream gradient itself: own a view of it instead
      const dx = live.has(dxs[k]) ? tf.clone(dxs[k]) : dxs[k];
      if (dx.dtype !== 'float32' || !isTensorShape(dx.shape, x.shape)) {
        dx.dispose();
        throw new Error(
          `KeptTape.backward: op ${node.kernelName} gave input ${name} a ${dx.dtype} gradient [${dx.shape}], expected float32 [${x.shape}]`,
        );
      }
      const prev = this.grads.get(x.id);
      if (prev) {
        this.grads.set(x.id, tf.add(prev, dx));
        if (!external.has(prev)) prev.dispose();
        dx.dispose();
      } else this.grads.set(x.id, dx);
      live.add(this.grads.get(x.id)!);
    }
  }

  private disposeRest(nodes: KeptNode[]): void {
    for (const { node } of nodes) tf.dispose(node.saved ?? []);
    this.dispose();
  }

  /** Frees whatever the tape still keeps (saved tensors, deferred upstream gradients). Safe to call twice. */
  dispose(): void {
    for (const { node } of this.nodes ?? []) tf.dispose(node.saved ?? []);
    this.nodes = undefined;
    for (const { node, dys } of this.deferred) tf.dispose([...(node.saved ?? []), ...dys.filter((d) => d !== null)]);
    this.deferred = [];
    for (const g of this.grads.values()) if (!g.isDisposed) g.dispose();
    this.grads.clear();
  }
}

/**
 * Runs `f` (in a `tidy`) recording TensorFlow.js's autodiff tape, and keeps the ops between the `xs` (inputs and
 * variables) and its value with what their gradients read, for a `KeptTape.backward` later. Errors: called while
 * another gradient computation records (nesting), `f` returning a non-tensor.
 */
export function recordTape(f: () => tf.Tensor, xs: readonly tf.Tensor[], options: RecordOptions = {}): KeptTape {
  const eng = tf.engine() as unknown as EngineTapeInternals;
  if (eng.state.gradientDepth !== 0)
    throw new Error('recordTape: another gradient computation is recording (tapes do not nest)');
  let tape: Node[] = [];
  let value: tf.Tensor;
  const previous = setAttentionCoreRecompute(options.selective ?? false);
  eng.startTape();
  try {
    value = tf.tidy(f);
  } catch (e) {
    tape = eng.state.activeTape ?? [];
    for (const n of tape) tf.dispose(n.saved ?? []);
    throw e;
  } finally {
    eng.endTape();
    tape = eng.state.activeTape ?? [];
    eng.state.activeTape = null;
    setAttentionCoreRecompute(previous);
  }
  if (!(value instanceof tf.Tensor)) throw new Error('recordTape: f must return a tensor');
  const prune = options.prune ?? false;
  // the ops between the xs and the value: forward from the xs, then back from the value
  const fromX = new Set(xs.map((x) => x.id));
  const reached = tape.map((n) => {
    const hit = Object.values(n.inputs).some((t) => t && fromX.has(t.id));
    if (hit) for (const o of n.outputs) fromX.add(o.id);
    return hit;
  });
  const toY = new Set([value.id]);
  const kept: KeptNode[] = [];
  for (let i = tape.length - 1; i >= 0; i--) {
    const n = tape[i];
    const leads = n.outputs.some((o) => toY.has(o.id));
    if (leads) for (const t of Object.values(n.inputs)) if (t) toY.add(t.id);
    if (leads && reached[i]) {
      const inputs = Object.entries(n.inputs).filter(([, t]) => t && fromX.has(t.id));
      if (prune) pruneSaved(n, inputs);
      kept.push({ node: n, inputs });
    } else tf.dispose(n.saved ?? []);
  }
  kept.reverse();
  return new KeptTape(value, xs, kept);
}
