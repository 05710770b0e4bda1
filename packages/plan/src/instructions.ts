/**
 * One step of a pipeline rank, in the spirit of DeepSpeed's `PipeSchedule` instructions. Micro-batches are numbered
 * 0..M−1 within one optimizer step; ranks 0..P−1. A rank holds one pipeline stage (`stage` absent: the stage whose
 * index is the rank's) or several virtual stages (model chunks, global indices 0..V−1, `stage` names the one an
 * instruction works on; interleaved 1F1B and ZB-V). Sends are asynchronous (buffered); receives block until the
 * matching send has happened. `to`/`from` are ranks.
 */
export type Instruction =
  /** Read micro-batch `microbatch` from the data loader: token ids for the first stage, targets for the last. */
  | { op: 'load'; microbatch: number; inputs: boolean; targets: boolean; stage?: number }
  /** Run the stage's forward pass on the micro-batch (keeping what the recompute setting keeps). */
  | { op: 'forward'; microbatch: number; stage?: number }
  /** Run the stage's full backward pass on the micro-batch (recomputing as needed), accumulating parameter gradients. */
  | { op: 'backward'; microbatch: number; stage?: number }
  /**
   * The input half of a split backward (zero-bubble `I`): the gradient with respect to the stage's input, layer by
   * layer; each layer's weight-gradient work is queued for the micro-batch's `backwardWeight`.
   */
  | { op: 'backwardInput'; microbatch: number; stage?: number }
  /** The weight half of a split backward (`W`): runs the micro-batch's queued weight-gradient work, accumulating it. */
  | { op: 'backwardWeight'; microbatch: number; stage?: number }
  /** Send the stage's output hidden states [B, S, H] to rank `to` (which holds the next stage). */
  | { op: 'sendActivation'; microbatch: number; to: number; stage?: number }
  /** Receive the previous stage's output hidden states [B, S, H] from rank `from`. */
  | { op: 'recvActivation'; microbatch: number; from: number; stage?: number }
  /** Send the gradient with respect to the stage's input [B, S, H] to rank `to` (which holds the previous stage). */
  | { op: 'sendGradient'; microbatch: number; to: number; stage?: number }
  /** Receive the gradient with respect to the stage's output from rank `from`. */
  | { op: 'recvGradient'; microbatch: number; from: number; stage?: number }
  /**
   * Sum the tied word-embedding gradients of the listed ranks (the first stage's embedding and the last stage's
   * output projection copy), as Megatron's `_allreduce_word_embedding_grads`; a collective: every listed rank runs it.
   * One listed rank holds both copies and sums them locally.
   */
  | { op: 'reduceTiedGradients'; stages: number[] }
  /** Apply the optimizer to the rank's parameters (the step's gradients are complete). */
  | { op: 'optimizerStep' };

/** Per-stage pass times (any unit; seconds when measured): forward F, input backward I, weight backward W. */
export interface PassCosts {
  /** Forward F of the whole stage for one micro-batch. */
  forward: number;
  /** Input-gradient backward I. */
  backwardInput: number;
  /** Weight-gradient backward W (a full backward B is I + W). */
  backwardWeight: number;
}

/** What a schedule is asked for: one rank's list for P ranks and M micro-batches. */
export interface ScheduleOptions {
  /** Pipeline ranks P ≥ 1 (each holds one stage, or the schedule's virtual stages). */
  stages: number;
  /** Micro-batches per optimizer step M ≥ 1 (M < P is allowed: the pipeline never fills, a larger bubble). */
  microbatches: number;
  /** The rank whose list to build, 0..P−1. */
  stage: number;
  /** Whether the first and last stage hold tied embedding copies whose gradients are summed (default true, as YUAN). */
  tiedEmbeddings?: boolean;
  /**
   * Pass times a schedule that places work by time may use (the zero-bubble heuristics `zb-h1`, `zb-h2`); default
   * F = I = W = 1. The same times must be given for every rank's list.
   */
  costs?: PassCosts;
  /**
   * Pass times per virtual stage (length chunks × P, in model order), for a schedule that places work by each chunk's
   * own time (`zb-v-auto`); it takes precedence over `costs` there, and the other schedules ignore it.
   */
  stageCosts?: readonly PassCosts[];
}
