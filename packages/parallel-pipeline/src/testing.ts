// The test-only entry of @yuan/parallel-pipeline (built as dist/testing.js, left out of the published package and not
// reachable from its public entry): fault injection into pipeline stages. Tests in this package import it; a test
// that runs `yuan train` as a child process preloads a module that calls `injectStageFault` (NODE_OPTIONS=--import),
// so that every thread and rank process of the run has it.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, resourceLimits } from 'node:worker_threads';
import { installedStageHooks, setStageHooks, type StageHooks } from './runtime/hooks.js';

/** A fault a test asks a stage to raise, before its first forward of one training step. */
export interface InjectedFault {
  stage: number;
  /** The optimizer step (1-based). */
  step: number;
  /**
   * `throw`: an Error "injected fault in stage S"; `exit`: the thread (or process) exits with code 3; `oom`: the stage
   * allocates until its worker's heap limit stops it (only in a `pipelineEngine` stage worker, which then gets a 64 MiB
   * heap limit; elsewhere it throws instead of eating the machine's memory).
   */
  kind: 'throw' | 'exit' | 'oom';
  /** Only on this data-parallel rank (default: every rank). */
  dataRank?: number;
}

/** This module as the stage workers can import it: the built dist/testing.js (also when the tests run the sources). */
function builtUrl(): string {
  for (const rel of ['./testing.js', '../dist/testing.js']) {
    const u = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(u))) return u.href;
  }
  throw new Error('dist/testing.js is missing: build @yuan/parallel-pipeline first');
}

function check(f: InjectedFault): void {
  const int = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  if (
    !f ||
    !int(f.stage) ||
    !int(f.step) ||
    !['throw', 'exit', 'oom'].includes(f.kind) ||
    !(f.dataRank === undefined || int(f.dataRank))
  ) {
    throw new Error(`bad injected fault ${JSON.stringify(f)}: want {stage, step, kind: throw|exit|oom, dataRank?}`);
  }
}

function hooksFor(fault: InjectedFault, carry?: StageHooks['carry']): StageHooks {
  return {
    beforeForward({ stage, dataRank, step }) {
      if (stage !== fault.stage || step !== fault.step || (fault.dataRank !== undefined && dataRank !== fault.dataRank))
        return;
      if (fault.kind === 'throw') throw new Error(`injected fault in stage ${stage}`);
      if (fault.kind === 'exit') process.exit(3);
      if (isMainThread || !(resourceLimits.maxOldGenerationSizeMb! > 0))
        throw new Error(`injected oom fault in stage ${stage} needs a stage worker with a heap limit`);
      const hog: number[][] = [];
      for (;;) hog.push(new Array(1 << 20).fill(hog.length));
    },
    workerLimits: (stage) =>
      fault.kind === 'oom' && stage === fault.stage ? { maxOldGenerationSizeMb: 64 } : undefined,
    carry,
  };
}

/**
 * Makes stage `fault.stage` fail at step `fault.step` in the pipelines this thread runs (`pipelineEngine`'s stage
 * workers get it too; `pipelineRankEngine` ranks are hooked where this runs). Returns a function that removes it.
 */
export function injectStageFault(fault: InjectedFault): () => void {
  check(fault);
  const before = installedStageHooks();
  setStageHooks(hooksFor(fault, { module: builtUrl(), options: fault }));
  return () => setStageHooks(before);
}

/** What a stage worker calls with the options its coordinator's hooks carried (an InjectedFault). */
export function installStageHooks(options: unknown): void {
  check(options as InjectedFault);
  setStageHooks(hooksFor(options as InjectedFault));
}
