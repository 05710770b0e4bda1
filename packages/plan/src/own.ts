import { moduleRegistry, type PluginRegistry } from '@yuan/core';
import { memoryPartition, parametersPartition, uniformPartition } from './partition.js';
import type { PartitionPlugin, SchedulePlugin } from './plugins.js';
import {
  gpipeSchedule,
  interleavedSchedule,
  oneFOneBSchedule,
  zbH1Schedule,
  zbH2Schedule,
  zbvSchedule,
} from './schedule.js';

/**
 * This package's plugins: the partitioners `uniform`, `parameters`, `memory` and the schedules `gpipe`, `1f1b`,
 * `interleaved-1f1b`, `zb-h1`, `zb-h2`, `zb-v`.
 */
export function planPlugins(): (PartitionPlugin | SchedulePlugin)[] {
  return [
    uniformPartition,
    parametersPartition,
    memoryPartition,
    gpipeSchedule,
    oneFOneBSchedule,
    interleavedSchedule,
    zbH1Schedule,
    zbH2Schedule,
    zbvSchedule,
  ];
}

let own: PluginRegistry | undefined;

/** A frozen registry of this package's plugins: where names are looked up when the caller gives no registry. */
export function planRegistry(): PluginRegistry {
  return (own ??= moduleRegistry({ plugins: planPlugins() }, '@yuan/plan'));
}
