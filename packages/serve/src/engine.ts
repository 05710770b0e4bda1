import { Rng, YuanError, type CacheEntrySpec, type Tokenizer } from '@yuan/core';
import { tf, type AttentionCache } from '@yuan/tensor';
import {
  attentionOptions,
  attentionSpec,
  disposeCache,
  sampleToken,
  type Decoder,
  type DecodeSequence,
  type ModelCache,
  type YuanModel,
} from '@yuan/model';
import { CompletionText } from '@yuan/tokenizer';

/**
 * Most rows (tokens) of one native step: the running rows' next tokens plus the prompts prefilled with them. Below 32
 * rows every linear kernel of the native backend gives a row bit for bit what it gives that row alone (the register
 * paths; from 32 rows fp32, bf16 and GPTQ weights go through BLAS), so a request's tokens do not depend on what it was
 * batched with.
 */
const STEP_ROWS = 31;

/** A request content error (HTTP 400): `param` names the request field at fault (`prompt`, `max_tokens`, ...). */
export class ServeInputError extends YuanError {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super('input', message);
    this.name = 'ServeInputError';
  }
}

/**
 * One generation request to the serving engine. Defaults: max tokens up to the context, greedy (temperature 0), no
 * top-k/top-p, seed 0 (choice i samples with seed + i), n 1, no stop strings, no logprobs, no echo.
 */
export interface ServeRequest {
  /** Text, or token ids of the model's vocabulary. An empty prompt means `[<eod>]` (start of a document). */
  prompt: string | readonly number[];
  /** Largest number of new tokens; undefined: up to the model's context. Clamped to the room left in the context. */
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  n?: number;
  /** Strings that end a completion; the text is cut before the first occurrence of any. */
  stop?: readonly string[];
  /** Return the log-probability of each token and of the `logprobs` most likely tokens at each position (0..20). */
  logprobs?: number;
  /** Return the prompt before the completion in `text` and, with `logprobs`, the prompt tokens' log-probabilities. */
  echo?: boolean;
  /** Keep generating after `<eod>` (it then appears in the text). Default false. */
  ignoreEod?: boolean;
}

/** A request checked and tokenized by `prepare`; hand it to `generate`. */
export interface PreparedRequest {
  readonly request: ServeRequest;
  readonly promptIds: readonly number[];
  /** max new tokens after clamping to the context. */
  readonly maxNewTokens: number;
}

/** One token of a `logprobs` answer: its text, its log-probability (null for the first prompt token), the top tokens. */
export interface TokenLogprob {
  token: string;
  logprob: number | null;
  top: [string, number][] | null;
  /** Character offset of the token in the returned text (approximate while a character is incomplete). */
  offset: number;
}

/** One finished completion. */
export interface ServeChoice {
  index: number;
  /** The completion text (preceded by the prompt text with `echo`). */
  text: string;
  /** `stop`: `<eod>` or a stop string ended it; `length`: max tokens or the context ran out. */
  finishReason: 'stop' | 'length';
  completionTokens: number;
  /** With `logprobs`: one entry per token (the prompt's first with `echo`). */
  logprobs?: TokenLogprob[];
}

/** The finished request: prompt size and the choices in index order. */
export interface ServeResult {
  promptTokens: number;
  choices: ServeChoice[];
}

/** Streaming callback: choice `index` has new final text `delta` (may be '') and the logprob entries of its tokens. */
export type ServeListener = (index: number, delta: string, logprobs: TokenLogprob[]) => void;

/** Options of the engine. Default: up to 8 sequences decoded together. */
export interface ServingEngineOptions {
  maxBatch?: number;
}

/** Printable text of one token id for logprobs: `▁` as a space, a lone byte piece as the byte or `bytes:\xNN`. */
export function tokenString(tokenizer: Tokenizer, id: number): string {
  const piece = tokenizer.pieces([id])[0] ?? '';
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  if (m) {
    const b = parseInt(m[1], 16);
    return b < 0x80 ? String.fromCharCode(b) : `bytes:\\x${m[1].toLowerCase()}`;
  }
  return piece.replaceAll('\u2581', ' ');
}

/** Log-probability of `id` and the top `k` (id, logprob) of one logits row, in float64. */
function rowLogprobs(row: Float32Array, id: number, k: number): { logprob: number; top: [number, number][] } {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = max + Math.log(sum);
  const top: [number, number][] = [];
  if (k > 0) {
    // keep the k largest (ties: lower id first) by insertion into a small sorted list
    for (let i = 0; i < row.length; i++) {
      const v = row[i];
      if (top.length === k && v <= top[k - 1][1]) continue;
      let j = top.length - (top.length === k ? 1 : 0);
      if (top.length === k) top.pop();
      while (j > 0 && top[j - 1][1] < v) j--;
      top.splice(j, 0, [i, v]);
    }
  }
  return { logprob: row[id] - lse, top: top.map(([i, v]) => [i, v - lse]) };
}

/** `t` with `n` zero steps in front along `axis`. */
function padFront(t: tf.Tensor, axis: number, n: number): tf.Tensor {
  return tf.pad(
    t,
    t.shape.map((_, i): [number, number] => (i === axis ? [n, 0] : [0, 0])),
  );
}

/** One choice being generated. */
interface Row {
  seq: Sequence;
  index: number;
  rng: Rng;
  text: CompletionText;
  /** Tokens generated so far. */
  generated: number;
  /** The token to feed at the next step. */
  last: number;
  /** Tokens in the cache (the position of `last`). */
  length: number;
  /** The row's own sequence on the native decoder (its attention plugin's per-layer states). */
  state?: DecodeSequence;
  logprobs?: TokenLogprob[];
  pendingLogprobs: TokenLogprob[];
  finish?: 'stop' | 'length';
}

/** One request in the engine. */
interface Sequence {
  prepared: PreparedRequest;
  listener?: ServeListener;
  signal?: AbortSignal;
  choices: (ServeChoice | undefined)[];
  promptLogprobs?: TokenLogprob[];
  echoText: string;
  resolve(r: ServeResult): void;
  reject(e: unknown): void;
}

/**
 * Serves generation requests on one local model with continuous batching: each new request is prefilled alone, then
 * its choices join the running batch, which is decoded one token per step for all rows together (each row with its
 * own cache length and RoPE positions). The attention plugin's `cache` descriptor says how: an entry with a time axis
 * (K and V) is left-padded along it to a common length, the padding masked out of attention (`keyBias`) and trimmed
 * when rows leave; an entry of fixed size (LFA's convolution history) is stacked per row. A plugin without `cache`
 * is served one request at a time (its choices still decode together). A model with a native `decoder` (weights in
 * their stored format: fp32, bf16, int8, int4) decodes on it instead: every row keeps its own sequence (each layer's
 * state as the attention plugin's decode layer makes it: its K/V cache, LFA's convolution inputs), and one step is one
 * `Decoder.forward` over all rows, whose linear layers read each weight once for the whole batch; rows join and leave
 * without copying caches. There the prompts of requests that arrive together are prefilled together, in the same
 * call as the running rows' next tokens (up to 31 rows per call; see `cycleNative`), so admitting a request does not
 * stall the running rows. Rows leave as soon as they finish. The tokens
 * each request gets are those it gets when served alone (greedy ids identical; logits equal up to float summation
 * order). A cache entry the descriptor does not list, or of another size than it says, is a one-line error.
 *
 * Text is built with `CompletionText` (exact decoding in context, stop strings cut exactly, incomplete characters
 * held back). `prepare` throws `ServeInputError` for requests the model cannot serve, before anything is generated.
 */
export class ServingEngine {
  private readonly maxBatch: number;
  private readonly pending: Row[][] = [];
  /** Each layer's cache entries by name (the attention plugin's `cache`); undefined when the plugin has none. */
  private readonly layout: Map<string, CacheEntrySpec>[] | undefined;
  private rows: Row[] = [];
  private cache: ModelCache | undefined;
  /** The native decoder when the model has one (then `cache` and `pads` stay unused). */
  private readonly decoder: Decoder | undefined;
  /** Left padding of each row along the time axes of the batched cache. */
  private pads: number[] = [];
  private running = false;

  constructor(
    readonly model: YuanModel,
    readonly tokenizer: Tokenizer,
    options: ServingEngineOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 8;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1)
      throw new YuanError('config', `maxBatch must be a positive integer, got ${options.maxBatch}`);
    const plugin = model.attention;
    this.decoder = model.decoder;
    if (plugin.cache && !this.decoder) {
      const options = attentionOptions(model.config, plugin);
      this.layout = [];
      for (let l = model.part.firstLayer; l < model.part.endLayer; l++) {
        this.layout.push(new Map(plugin.cache(attentionSpec(model.config, l), options).map((e) => [e.name, e])));
      }
    }
  }

  /** How layer `l`'s cache entry `key` batches; checks a batch-1 tensor of it against the descriptor when given. */
  private entry(l: number, key: string, t?: tf.Tensor): CacheEntrySpec | undefined {
    if (!this.layout) return undefined;
    const name = this.model.attention.name;
    const spec = this.layout[l]?.get(key);
    if (!spec) {
      throw new YuanError(
        'model',
        `attention plugin "${name}" returned cache entry "${key}", which its cache() descriptor does not list (${[...(this.layout[l]?.keys() ?? [])].join(', ') || 'none'})`,
      );
    }
    if (t) {
      const per = t.size / t.shape[0] / (spec.timeAxis === undefined ? 1 : (t.shape[spec.timeAxis] ?? NaN));
      if (per !== spec.elements) {
        throw new YuanError(
          'model',
          `attention plugin "${name}": cache entry "${key}" [${t.shape}] has ${per} elements per ${spec.timeAxis === undefined ? 'sequence' : 'token'}; its cache() descriptor says ${spec.elements}${spec.timeAxis === undefined ? '' : ` (time axis ${spec.timeAxis})`}`,
        );
      }
    }
    return spec;
  }

  /** Number of rows decoding now (for tests and metrics). */
  get batchSize(): number {
    return this.rows.length;
  }

  /** Whether steps run on the model's native decoder (batched over stored weights) rather than on tfjs. */
  get native(): boolean {
    return this.decoder !== undefined;
  }

  /** Checks and tokenizes a request; throws ServeInputError (a 400) when the model cannot serve it. */
  prepare(request: ServeRequest, promptParam = 'prompt'): PreparedRequest {
    const max = this.model.config.model.maxPositions;
    const vocab = Math.min(this.model.config.model.vocabSize, this.tokenizer.vocabSize);
    let ids: number[];
    if (typeof request.prompt === 'string') {
      ids = this.tokenizer.encode(request.prompt);
      const bad = ids.find((id) => id >= this.model.config.model.vocabSize);
      if (bad !== undefined)
        throw new ServeInputError(
          promptParam,
          `the prompt encodes to token ${bad}, outside the model's vocabulary of ${this.model.config.model.vocabSize}`,
        );
    } else {
      ids = [...request.prompt];
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
      if (bad !== undefined)
        throw new ServeInputError(
          promptParam,
          `token id ${bad} in the prompt is outside the vocabulary (0..${vocab - 1})`,
        );
    }
    if (ids.length === 0) ids = [this.tokenizer.special.eod];
    if (ids.length > max) {
      throw new ServeInputError(
        promptParam,
        `this model's maximum context length is ${max} tokens; the prompt has ${ids.length} tokens`,
      );
    }
    const room = max - ids.length;
    const asked = request.maxNewTokens ?? room;
    if (asked > 0 && room === 0 && !request.echo) {
      throw new ServeInputError(
        promptParam,
        `this model's maximum context length is ${max} tokens; the prompt has ${ids.length} tokens, leaving no room for new tokens`,
      );
    }
    const lp = request.logprobs;
    if (lp !== undefined && !(Number.isInteger(lp) && lp >= 0 && lp <= 20))
      throw new ServeInputError('logprobs', `logprobs must be an integer from 0 to 20, got ${lp}`);
    return { request, promptIds: ids, maxNewTokens: Math.min(asked, room) };
  }

  /** Generates every choice of a prepared request, calling `listener` with text as it becomes final. */
  generate(prepared: PreparedRequest, listener?: ServeListener, signal?: AbortSignal): Promise<ServeResult> {
    return new Promise<ServeResult>((resolve, reject) => {
      const req = prepared.request;
      const n = req.n ?? 1;
      const seq: Sequence = {
        prepared,
        listener,
        signal,
        choices: new Array(n).fill(undefined),
        echoText: '',
        resolve,
        reject,
      };
      const rows = Array.from({ length: n }, (_, index): Row => {
        const text = new CompletionText(this.tokenizer, prepared.promptIds, req.stop ?? []);
        return {
          seq,
          index,
          rng: new Rng((req.seed ?? 0) + index),
          text,
          generated: 0,
          last: -1,
          length: prepared.promptIds.length,
          ...(req.logprobs !== undefined ? { logprobs: [] } : {}),
          pendingLogprobs: [],
        };
      });
      this.pending.push(rows);
      if (!this.running) void this.pump();
    });
  }

  /** The scheduler: admit waiting requests, decode one step for the batch, repeat while there is work. */
  private async pump(): Promise<void> {
    this.running = true;
    try {
      // start on the next turn of the event loop, so that requests sent together are admitted together
      await new Promise((r) => setImmediate(r));
      while (this.pending.length > 0 || this.rows.length > 0) {
        if (this.decoder) {
          this.cycleNative(this.decoder);
          await new Promise((r) => setImmediate(r)); // let the server read requests and write streams between steps
          continue;
        }
        // a plugin without a cache descriptor cannot be padded into a batch: its requests take turns
        const room = (n: number) =>
          this.rows.length === 0 ||
          ((this.layout !== undefined || this.decoder !== undefined) && this.rows.length + n <= this.maxBatch);
        while (this.pending.length > 0 && room(this.pending[0].length)) {
          const rows = this.pending.shift()!;
          try {
            this.admit(rows);
          } catch (e) {
            rows[0].seq.reject(e);
          }
        }
        if (this.rows.length > 0) {
          try {
            this.step();
          } catch (e) {
            const failed = new Set(this.rows.map((r) => r.seq));
            this.clear();
            for (const s of failed) s.reject(e);
          }
        }
        await new Promise((r) => setImmediate(r)); // let the server read requests and write streams between steps
      }
    } finally {
      this.running = false;
    }
  }

  /** Prefills a request alone, samples each choice's first token and adds the unfinished choices to the batch. */
  private admit(rows: Row[]): void {
    const seq = rows[0].seq;
    const { promptIds, maxNewTokens, request } = seq.prepared;
    const k = request.logprobs;
    const wantPrompt = request.echo === true && k !== undefined;
    const ids = tf.tensor2d([promptIds as number[]], [1, promptIds.length], 'int32');
    const r = this.model.forward(ids, { useCache: maxNewTokens > 1, lastOnly: !wantPrompt });
    ids.dispose();
    try {
      if (request.echo) seq.echoText = rows[0].text.promptPart;
      if (wantPrompt) {
        const logits = r.logits;
        seq.promptLogprobs = this.promptLogprobs(logits.shape[1], promptIds, k, (i) => {
          const rowT = tf.tidy(() => logits.slice([0, i, 0], [1, 1, -1]).reshape([-1]));
          const row = rowT.dataSync() as Float32Array;
          rowT.dispose();
          return row;
        });
      }
      const last = tf.tidy(() => r.logits.slice([0, r.logits.shape[1] - 1, 0], [1, 1, -1]).reshape([-1]));
      const row = last.dataSync() as Float32Array;
      last.dispose();
      const joining: Row[] = [];
      for (const x of rows) {
        if (maxNewTokens === 0) x.finish = 'length';
        else this.accept(x, row);
        if (x.finish) this.complete(x);
        else joining.push(x);
      }
      if (joining.length > 0) this.join(joining, r.cache!);
    } finally {
      r.logits.dispose();
      disposeCache(r.cache);
    }
  }

  /**
   * `admit` on the native decoder, for a request whose prompt cannot ride along with a step (see `cycleNative`): each
   * choice prefills its own sequence of the prompt (the same computation, so the same state and first logits), samples
   * its first token and joins the batch.
   */
  private admitNative(rows: Row[], decoder: Decoder): void {
    const seq = rows[0].seq;
    const { promptIds, maxNewTokens, request } = seq.prepared;
    const k = request.logprobs;
    const wantPrompt = request.echo === true && k !== undefined;
    const vocab = this.model.config.model.vocabSize;
    const joining: Row[] = [];
    for (const [i, x] of rows.entries()) {
      const state = decoder.newSequence(promptIds.length + maxNewTokens);
      const logits = decoder.forward([{ sequence: state, tokens: promptIds }], wantPrompt && i === 0);
      if (i === 0) {
        if (request.echo) seq.echoText = x.text.promptPart;
        if (wantPrompt)
          seq.promptLogprobs = this.promptLogprobs(promptIds.length, promptIds, k, (j) =>
            logits.subarray(j * vocab, (j + 1) * vocab),
          );
      }
      if (maxNewTokens === 0) x.finish = 'length';
      else this.accept(x, logits.subarray(logits.length - vocab));
      if (x.finish) this.complete(x);
      else {
        x.state = state;
        joining.push(x);
      }
    }
    this.rows.push(...joining);
  }

  /**
   * One scheduler cycle on the native decoder: waiting requests are admitted in arrival order and their prompts
   * prefilled in the same `Decoder.forward` as the running rows' next tokens (each choice its own sequence, all
   * prompts of requests that arrive together in one call), while the call stays within `STEP_ROWS` rows and the batch
   * within `maxBatch`; so a new request neither waits for a step of its own nor stalls the running rows. A request
   * that cannot ride along (a prompt longer than the rows left, or one asking for its prompt's logprobs, which need
   * the logits of every position) is prefilled alone by `admitNative` when it is first in line, before the step (one
   * such request per cycle): the running rows wait one call. A failed call rejects every request in it.
   */
  private cycleNative(decoder: Decoder): void {
    const fresh: Row[] = [];
    let size = this.rows.length;
    let alone = false;
    while (this.pending.length > 0) {
      const next = this.pending[0];
      const taken = this.rows.length + fresh.length;
      if (taken > 0 && taken + next.length > this.maxBatch) break;
      const { promptIds, request } = next[0].seq.prepared;
      const wantPrompt = request.echo === true && request.logprobs !== undefined;
      const rows = next.length * promptIds.length;
      if (!wantPrompt && size + rows <= STEP_ROWS) {
        this.pending.shift();
        fresh.push(...next);
        size += rows;
        continue;
      }
      if (fresh.length > 0 || alone) break; // first in line next cycle (at most one call before the step)
      alone = true;
      this.pending.shift();
      try {
        this.admitNative(next, decoder);
      } catch (e) {
        next[0].seq.reject(e);
      }
      size = this.rows.length;
    }
    const running = this.rows.length;
    if (running + fresh.length === 0) return;
    const states = fresh.map((x) => decoder.newSequence(x.seq.prepared.promptIds.length + x.seq.prepared.maxNewTokens));
    const items = [
      ...this.rows.map((x) => ({ sequence: x.state!, tokens: [x.last] })),
      ...fresh.map((x, i) => ({ sequence: states[i], tokens: x.seq.prepared.promptIds })),
    ];
    let all: Float32Array;
    try {
      all = decoder.forward(items);
    } catch (e) {
      const failed = new Set([...this.rows, ...fresh].map((r) => r.seq));
      this.clear();
      for (const s of failed) s.reject(e);
      return;
    }
    const v = all.length / items.length;
    for (let i = 0; i < running; i++) {
      const x = this.rows[i];
      x.length++;
      this.accept(x, all.subarray(i * v, (i + 1) * v));
    }
    fresh.forEach((x, i) => {
      const { request, maxNewTokens } = x.seq.prepared;
      if (x.index === 0 && request.echo) x.seq.echoText = x.text.promptPart;
      if (maxNewTokens === 0) x.finish = 'length';
      else this.accept(x, all.subarray((running + i) * v, (running + i + 1) * v));
      x.state = states[i];
    });
    const stepped = [...this.rows, ...fresh];
    this.rows = stepped.filter((x) => x.finish === undefined);
    for (const x of stepped) {
      if (x.finish === undefined) continue;
      x.state = undefined;
      this.complete(x);
    }
  }

  /**
   * Log-probabilities of the prompt's tokens (the first has none) and the top-k at each position, from `rows` rows of
   * logits (`logitsAt(i)`: the logits after prompt token i).
   */
  private promptLogprobs(
    rows: number,
    ids: readonly number[],
    k: number,
    logitsAt: (i: number) => Float32Array,
  ): TokenLogprob[] {
    const text = new CompletionText(this.tokenizer, []);
    const out: TokenLogprob[] = [{ token: tokenString(this.tokenizer, ids[0]), logprob: null, top: null, offset: 0 }];
    text.push(ids[0]);
    for (let i = 1; i < ids.length && i < rows + 1; i++) {
      const { logprob, top } = rowLogprobs(logitsAt(i - 1), ids[i], k);
      out.push({
        token: tokenString(this.tokenizer, ids[i]),
        logprob,
        top: top.map(([id, v]) => [tokenString(this.tokenizer, id), v]),
        offset: text.sentLength,
      });
      text.push(ids[i]);
    }
    return out;
  }

  /** Samples a row's next token from its logits, updates its text and decides whether it is finished. */
  private accept(x: Row, logits: Float32Array): void {
    const req = x.seq.prepared.request;
    const id = sampleToken(
      logits,
      { temperature: req.temperature ?? 0, topK: req.topK ?? 0, topP: req.topP ?? 1 },
      x.rng,
    );
    x.generated++;
    x.last = id;
    if (x.logprobs) {
      const { logprob, top } = rowLogprobs(logits, id, req.logprobs!);
      const entry: TokenLogprob = {
        token: tokenString(this.tokenizer, id),
        logprob,
        top: top.map(([t, v]) => [tokenString(this.tokenizer, t), v]),
        offset: x.seq.echoText.length + x.text.sentLength,
      };
      x.logprobs.push(entry);
      x.pendingLogprobs.push(entry);
    }
    if (id === this.tokenizer.special.eod && !req.ignoreEod) {
      x.finish = 'stop';
      return;
    }
    const step = x.text.push(id);
    this.emit(x, step.delta);
    if (step.stopped) x.finish = 'stop';
    else if (x.generated >= x.seq.prepared.maxNewTokens) x.finish = 'length';
    else if (x.seq.signal?.aborted) x.finish = 'stop';
  }

  private emit(x: Row, delta: string, force = false): void {
    if (!x.seq.listener || (delta === '' && !force)) return;
    const lp = x.pendingLogprobs;
    x.pendingLogprobs = [];
    x.seq.listener(x.index, delta, lp);
  }

  /** Flushes a finished row's text and resolves its request when all its choices are done. */
  private complete(x: Row): void {
    if (!x.text.stopped) {
      const end = x.text.finish();
      if (end.stopped) x.finish = 'stop';
      this.emit(x, end.delta, x.pendingLogprobs.length > 0);
    } else if (x.pendingLogprobs.length > 0) this.emit(x, '', true);
    const seq = x.seq;
    const logprobs = x.logprobs ? [...(seq.promptLogprobs ?? []), ...x.logprobs] : undefined;
    seq.choices[x.index] = {
      index: x.index,
      text: seq.echoText + x.text.text,
      finishReason: x.finish!,
      completionTokens: x.generated,
      ...(logprobs ? { logprobs } : {}),
    };
    if (seq.choices.every((c) => c !== undefined))
      seq.resolve({ promptTokens: seq.prepared.promptIds.length, choices: seq.choices as ServeChoice[] });
  }

  /** Adds rows (all sharing `cache`, a batch-1 cache of their prompt) to the running batch. */
  private join(rows: Row[], cache: ModelCache): void {
    const length = cache.length;
    const current = this.cache?.length ?? 0;
    const target = Math.max(current, length);
    const next = tf.tidy(() =>
      cache.layers.map((layer, l) => {
        const out: AttentionCache = {};
        for (const [key, t] of Object.entries(layer)) {
          const axis = this.entry(l, key, t)?.timeAxis;
          let mine: tf.Tensor = axis !== undefined && target > length ? padFront(t, axis, target - length) : t;
          mine = rows.length > 1 ? tf.concat(Array(rows.length).fill(mine), 0) : tf.clone(mine);
          const old = this.cache?.layers[l]?.[key];
          if (!old) {
            out[key] = mine;
            continue;
          }
          const grown = axis !== undefined && target > current ? padFront(old, axis, target - current) : old;
          if (grown.shape.slice(1).join() !== mine.shape.slice(1).join()) {
            throw new YuanError(
              'model',
              `cannot batch attention cache "${key}" of shapes [${grown.shape}] and [${mine.shape}]`,
            );
          }
          out[key] = tf.concat([grown, mine], 0);
        }
        return out;
      }),
    );
    disposeCache(this.cache);
    this.pads = [...this.pads.map((p) => p + target - current), ...rows.map(() => target - length)];
    this.rows.push(...rows);
    this.cache = { length: target, layers: next };
  }

  /** One decode step for every row of the batch. */
  private step(): void {
    const b = this.rows.length;
    const s = this.cache!.length;
    const ids = tf.tensor2d(
      this.rows.map((r) => [r.last]),
      [b, 1],
      'int32',
    );
    const positions = tf.tensor2d(
      this.rows.map((r) => [r.length]),
      [b, 1],
      'int32',
    );
    const biasValues = new Float32Array(b * (s + 1));
    this.pads.forEach((p, i) => biasValues.fill(-1e9, i * (s + 1), i * (s + 1) + p));
    const keyBias = tf.tensor4d(biasValues, [b, 1, 1, s + 1]);
    const seen = Math.max(...this.rows.map((r) => r.length));
    let r: { logits: tf.Tensor3D; cache?: ModelCache };
    try {
      r = this.model.forward(ids, { cache: this.cache, useCache: true, lastOnly: true, positions, keyBias, seen });
    } finally {
      ids.dispose();
      positions.dispose();
      keyBias.dispose();
    }
    disposeCache(this.cache, r.cache);
    this.cache = r.cache;
    const all = r.logits.dataSync() as Float32Array;
    r.logits.dispose();
    const v = all.length / b;
    for (let i = 0; i < b; i++) {
      const x = this.rows[i];
      x.length++;
      this.accept(x, all.subarray(i * v, (i + 1) * v));
    }
    const done = this.rows.map((x) => x.finish !== undefined);
    if (done.some(Boolean)) this.leave(done);
  }

  /** Removes finished rows from the batch (and trims padding no row needs). */
  private leave(done: boolean[]): void {
    const finished = this.rows.filter((_, i) => done[i]);
    const keep = this.rows.map((_, i) => i).filter((i) => !done[i]);
    if (keep.length === 0) this.clear();
    else {
      const pads = keep.map((i) => this.pads[i]);
      const trim = Math.min(...pads);
      const old = this.cache!;
      const layers = tf.tidy(() =>
        old.layers.map((layer, l) => {
          const out: AttentionCache = {};
          const index = tf.tensor1d(keep, 'int32');
          for (const [key, t] of Object.entries(layer)) {
            let kept: tf.Tensor = tf.gather(t, index, 0);
            const axis = this.entry(l, key)?.timeAxis;
            if (axis !== undefined && trim > 0)
              kept = tf.slice(
                kept,
                kept.shape.map((_, i) => (i === axis ? trim : 0)),
                kept.shape.map(() => -1),
              );
            out[key] = kept;
          }
          return out;
        }),
      );
      disposeCache(old);
      this.cache = { length: old.length - trim, layers };
      this.rows = keep.map((i) => this.rows[i]);
      this.pads = pads.map((p) => p - trim);
    }
    for (const x of finished) this.complete(x);
  }

  private clear(): void {
    disposeCache(this.cache);
    this.cache = undefined;
    this.rows = [];
    this.pads = [];
  }
}
