import type { ResourceLimits } from 'node:worker_threads';

/** Where a stage is when a hook runs. */
export interface StageMoment {
  stage: number;
  /** The stage's data-parallel rank (0 without data parallelism). */
  dataRank: number;
  /** The optimizer step being computed (1-based). */
  step: number;
  microbatch: number;
}

/**
 * The stage runtime's test seam: what a test installs in a thread (only through the test-only `testing` entry, never
 * from the package's public entry, a flag or the environment) to act inside the stages of that thread. The runtime
 * calls the hooks; without hooks it behaves exactly as with none of them set.
 */
export interface StageHooks {
  /** Runs before every training forward of a stage (it may throw: the stage fails as with any error). */
  beforeForward?(at: StageMoment): void;
  /** Resource limits of stage `stage`'s worker thread (the coordinator of `pipelineEngine` starts the workers). */
  workerLimits?(stage: number): ResourceLimits | undefined;
  /**
   * How a stage worker thread installs the same hooks: a module URL whose `installStageHooks(options)` the worker calls
   * before building its stage, and the (structured-clonable) options.
   */
  carry?: { module: string; options: unknown };
}

// one slot per thread, shared by every copy of this package loaded there (sources under a test runner, dist)
const KEY = Symbol.for('@yuan/parallel-pipeline/stage-hooks');
type Slot = { [KEY]?: StageHooks };

/** The hooks installed in this thread, if any. */
export function installedStageHooks(): StageHooks | undefined {
  return (globalThis as Slot)[KEY];
}

/** Installs `hooks` in this thread (undefined removes them). */
export function setStageHooks(hooks: StageHooks | undefined): void {
  if (hooks) (globalThis as Slot)[KEY] = hooks;
  else delete (globalThis as Slot)[KEY];
}
