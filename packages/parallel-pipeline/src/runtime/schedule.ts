import { YuanError, type PluginRegistry } from '@yuan/core';
import { SCHEDULE_PLUGINS, type SchedulePlugin } from '@yuan/plan';

/**
 * One instruction of a stage's per-step program (DeepSpeed's `PipeInstruction` stream; Megatron's
 * `forward_backward_pipelining_without_interleaving` written out). `mb` is the micro-batch index 0..M−1.
 */
export type Instruction =
  | { kind: 'loadMicroBatch'; mb: number }
  | { kind: 'recvActivation'; mb: number }
  | { kind: 'forward'; mb: number }
  | { kind: 'sendActivation'; mb: number }
  | { kind: 'recvGradient'; mb: number }
  | { kind: 'backward'; mb: number }
  | { kind: 'sendGradient'; mb: number }
  | { kind: 'reduceTiedGradients' }
  | { kind: 'optimizerStep' };

/**
 * The stage programs of a schedule plugin (`1f1b`, `gpipe` or a registered third-party one): for each stage its
 * instruction list for one optimizer step, in the form the stage interpreter runs. The interpreter accumulates
 * gradients in the order the backwards come; the built-in schedules run them in micro-batch order, as the
 * single-process trainer. Errors: an unknown schedule (listing the registered ones), bad sizes.
 */
export function stagePrograms(name: string, stages: number, microbatches: number, registry?: PluginRegistry): Instruction[][] {
  let plugin: SchedulePlugin | undefined;
  if (registry?.has('schedule', name)) plugin = registry.get('schedule', name);
  else plugin = SCHEDULE_PLUGINS.find((s) => s.name === name);
  if (!plugin) {
    const known = new Set([...SCHEDULE_PLUGINS.map((s) => s.name), ...(registry?.names('schedule') ?? [])]);
    throw new YuanError('usage', `unknown schedule "${name}" (schedules: ${[...known].sort().join(', ')})`);
  }
  return Array.from({ length: stages }, (_, stage) =>
    plugin!.instructions({ stages, microbatches, stage }).map((ins): Instruction => {
      switch (ins.op) {
        case 'load':
          return { kind: 'loadMicroBatch', mb: ins.microbatch };
        case 'reduceTiedGradients':
          return { kind: 'reduceTiedGradients' };
        case 'optimizerStep':
          return { kind: 'optimizerStep' };
        default:
          return { kind: ins.op, mb: ins.microbatch };
      }
    }),
  );
}
