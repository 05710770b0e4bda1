import { YuanError, type PluginRegistry } from '@yuan/core';
import { SCHEDULE_PLUGINS, simulateSchedule, type Instruction, type SchedulePlugin } from '@yuan/plan';

/**
 * The stage programs of a schedule plugin (`1f1b`, `gpipe` or a registered third-party one): for each stage its
 * instruction list for one optimizer step — the planner's `Instruction`s, which the stage interpreter runs as they are.
 * The lists are executed together by `simulateSchedule` first, so a schedule that would deadlock or skip a
 * micro-batch is an error here instead of a hang. The interpreter accumulates gradients in the order the backwards
 * come; the built-in schedules run them in micro-batch order, as the single-process trainer.
 * Errors: an unknown schedule (YuanError 'usage', listing the registered ones), bad sizes, a broken schedule
 * (YuanError 'schedule' naming the stage and instruction).
 */
export function stagePrograms(name: string, stages: number, microbatches: number, registry?: PluginRegistry): Instruction[][] {
  let plugin: SchedulePlugin | undefined;
  if (registry?.has('schedule', name)) plugin = registry.get('schedule', name);
  else plugin = SCHEDULE_PLUGINS.find((s) => s.name === name);
  if (!plugin) {
    const known = new Set([...SCHEDULE_PLUGINS.map((s) => s.name), ...(registry?.names('schedule') ?? [])]);
    throw new YuanError('usage', `unknown schedule "${name}" (schedules: ${[...known].sort().join(', ')})`);
  }
  const programs = Array.from({ length: stages }, (_, stage) => plugin!.instructions({ stages, microbatches, stage }));
  simulateSchedule(programs);
  return programs;
}
