import { moduleRegistry, type PluginRegistry } from '@yuan/core';
import { memoryPartition, parametersPartition, uniformPartition, vShapePartitionPlugin } from './partition.js';
import type { PartitionPlugin, SchedulePlugin } from './plugins.js';
import {
  gpipeSchedule,
  interleavedSchedule,
  oneFOneBSchedule,
  zbH1Schedule,
  zbH2Schedule,
  zbvAutoSchedule,
  zbvSchedule,
} from './schedule.js';

/**
 * This package's plugins: the partitioners `uniform`, `parameters`, `memory`, `v-shape` and the schedules `gpipe`,
 * `1f1b`, `interleaved-1f1b`, `zb-h1`, `zb-h2`, `zb-v`, `zb-v-auto`.
 */
export function planPlugins(): (PartitionPlugin | SchedulePlugin)[] {
  return [
    uniformPartition,
    parametersPartition,
    memoryPartition,
    vShapePartitionPlugin,
    gpipeSchedule,
    oneFOneBSchedule,
    interleavedSchedule,
    zbH1Schedule,
    zbH2Schedule,
    zbvSchedule,
    zbvAutoSchedule,
  ];
}

let own: PluginRegistry | undefined;

/** A frozen registry of this package's plugins: where names are looked up when the caller gives no registry. */
export function planRegistry(): PluginRegistry {
  return (own ??= moduleRegistry({ plugins: planPlugins() }, '@yuan/plan'));
}
