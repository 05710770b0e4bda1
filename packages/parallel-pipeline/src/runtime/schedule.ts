import { getSchedule, simulateSchedule, type Instruction } from '@yuan/plan';
import { YuanError, type PluginRegistry } from '@yuan/core';

/** The instruction kinds the stage interpreter runs: all but the split backward's halves. */
export type RuntimeOp = Exclude<Instruction['op'], 'backwardInput' | 'backwardWeight'>;

/**
 * The stage programs of a schedule plugin (`1f1b`, `gpipe` or a registered third-party one): for each stage its
 * instruction list for one optimizer step — the planner's `Instruction`s, which the stage interpreter runs as they are.
 * The lists are executed together by `simulateSchedule` first, so a schedule that would deadlock or skip a
 * micro-batch is an error here instead of a hang. The interpreter accumulates gradients in the order the backwards
 * come; the built-in schedules run them in micro-batch order, as the single-process trainer.
 * The name is looked up in `registry` (`getSchedule`; default: `@yuan/plan`'s own schedules).
 * Errors: an unknown schedule (listing the registered ones), bad sizes, a broken schedule
 * (YuanError 'schedule' naming the stage and instruction), a schedule with a split backward (I/W: `zb-h1`, `zb-h2`,
 * `zb-v`) or virtual stages (`interleaved-1f1b`), which this runtime does not execute yet (YuanError 'pipeline').
 */
export function stagePrograms(
  name: string,
  stages: number,
  microbatches: number,
  registry?: PluginRegistry,
): Instruction[][] {
  const plugin = getSchedule(name, registry);
  const programs = Array.from({ length: stages }, (_, stage) => plugin.instructions({ stages, microbatches, stage }));
  simulateSchedule(programs);
  const unsupported = programs
    .flat()
    .find(
      (i) => i.op === 'backwardInput' || i.op === 'backwardWeight' || ('stage' in i && typeof i.stage === 'number'),
    );
  if (unsupported) {
    throw new YuanError(
      'pipeline',
      `schedule "${name}" uses ${unsupported.op === 'backwardInput' || unsupported.op === 'backwardWeight' ? 'a split backward (I/W)' : 'virtual stages'}, which the pipeline runtime does not run yet (use it with yuan plan; train with gpipe or 1f1b)`,
    );
  }
  return programs;
}
