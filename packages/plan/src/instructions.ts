/**
 * One step of a pipeline stage, in the spirit of DeepSpeed's `PipeSchedule` instructions. Micro-batches are numbered
 * 0..M−1 within one optimizer step; stages 0..P−1. Sends are asynchronous (buffered); receives block until the
 * matching send has happened.
 */
export type Instruction =
  /** Read micro-batch `microbatch` from the data loader: token ids on the first stage, targets on the last. */
  | { op: 'load'; microbatch: number; inputs: boolean; targets: boolean }
  /** Run the stage's forward pass on the micro-batch (keeping what the recompute setting keeps). */
  | { op: 'forward'; microbatch: number }
  /** Run the stage's backward pass on the micro-batch (recomputing as needed), accumulating parameter gradients. */
  | { op: 'backward'; microbatch: number }
  /** Send the stage's output hidden states [B, S, H] to the next stage. */
  | { op: 'sendActivation'; microbatch: number; to: number }
  /** Receive the previous stage's output hidden states [B, S, H]. */
  | { op: 'recvActivation'; microbatch: number; from: number }
  /** Send the gradient with respect to the stage's input [B, S, H] to the previous stage. */
  | { op: 'sendGradient'; microbatch: number; to: number }
  /** Receive the gradient with respect to the stage's output from the next stage. */
  | { op: 'recvGradient'; microbatch: number; from: number }
  /**
   * Sum the tied word-embedding gradients of the listed stages (the first stage's embedding and the last stage's
   * output projection copy), as Megatron's `_allreduce_word_embedding_grads`; a collective: every listed stage runs it.
   */
  | { op: 'reduceTiedGradients'; stages: number[] }
  /** Apply the optimizer to the stage's parameters (the step's gradients are complete). */
  | { op: 'optimizerStep' };

/** What a schedule is asked for: one stage's list for P stages and M micro-batches. */
export interface ScheduleOptions {
  /** Pipeline stages P ≥ 1. */
  stages: number;
  /** Micro-batches per optimizer step M ≥ 1 (M < P is allowed: the pipeline never fills, a larger bubble). */
  microbatches: number;
  /** The stage whose list to build, 0..P−1. */
  stage: number;
  /** Whether the first and last stage hold tied embedding copies whose gradients are summed (default true, as YUAN). */
  tiedEmbeddings?: boolean;
}
