import { getSchedule, simulateSchedule, type Instruction, type PassCosts } from '@yuan/plan';
import { YuanError, type PluginRegistry } from '@yuan/core';
import type { StageChunk } from './protocol.js';

/** What `stagePrograms` returns: each rank's instruction list and where the (virtual) stages live. */
export interface StagePrograms {
  /** Rank r's instruction list for one optimizer step (index = rank, length P). */
  programs: Instruction[][];
  /** The rank holding each virtual stage (length V = chunks × P; `[0 … P−1]` without virtual stages). */
  placement: number[];
}

/**
 * The stage programs of a schedule plugin (`gpipe`, `1f1b`, `interleaved-1f1b`, `zb-h1`, `zb-h2`, `zb-v` or a
 * registered third-party one): for each rank its instruction list for one optimizer step — the planner's
 * `Instruction`s, which the stage interpreter runs as they are (split backwards as I then W, virtual stages as model
 * chunks of one rank). The lists are executed together by `simulateSchedule` first, so a schedule that would
 * deadlock or skip a micro-batch is an error here instead of a hang. The interpreter accumulates gradients in the
 * order the (weight) backwards come. The name is looked up in `registry` (`getSchedule`; default: `@yuan/plan`'s
 * own schedules). `stageCosts` (per virtual stage F, I, W) reach a schedule that orders by them (`zb-v-auto`).
 * Errors: an unknown schedule (listing the registered ones), bad sizes, a broken schedule (YuanError 'schedule'
 * naming the stage and instruction).
 */
export function stagePrograms(
  name: string,
  stages: number,
  microbatches: number,
  registry?: PluginRegistry,
  stageCosts?: readonly PassCosts[],
): StagePrograms {
  const plugin = getSchedule(name, registry);
  const programs = Array.from({ length: stages }, (_, stage) =>
    plugin.instructions({ stages, microbatches, stage, ...(stageCosts ? { stageCosts } : {}) }),
  );
  const { placement } = simulateSchedule(programs);
  return { programs, placement };
}

/**
 * Per virtual stage pass times for `stagePrograms` from one layer's (`layerCosts`) and the layers per virtual stage
 * (`partition`): stage v runs `partition[v]` times them; undefined without `layerCosts`.
 */
export function partitionCosts(partition: readonly number[], layerCosts?: PassCosts): PassCosts[] | undefined {
  if (!layerCosts) return undefined;
  return partition.map((n) => ({
    forward: n * layerCosts.forward,
    backwardInput: n * layerCosts.backwardInput,
    backwardWeight: n * layerCosts.backwardWeight,
  }));
}

/**
 * The chunks of rank `rank` from a partition over the V virtual stages (`partition[v]` layers, in model order) and
 * their placement: the stages on the rank, ascending, each with its layer range. Errors (YuanError 'usage'): a
 * partition that is not V positive layer counts summing to `layers` (V = P without virtual stages).
 */
export function chunksOf(
  partition: readonly number[],
  placement: readonly number[],
  rank: number,
  layers: number,
): StageChunk[] {
  const V = placement.length;
  if (
    partition.length !== V ||
    partition.some((n) => !(Number.isInteger(n) && n >= 1)) ||
    partition.reduce((a, b) => a + b, 0) !== layers
  ) {
    throw new YuanError(
      'usage',
      `partition ${partition.join(',')} is not ${V} positive layer counts summing to ${layers}${V > new Set(placement).size ? ` (the schedule has ${V} virtual stages)` : ''}`,
    );
  }
  const out: StageChunk[] = [];
  let first = 0;
  for (let v = 0; v < V; v++) {
    if (placement[v] === rank) out.push({ stage: v, firstLayer: first, endLayer: first + partition[v] });
    first += partition[v];
  }
  return out;
}
