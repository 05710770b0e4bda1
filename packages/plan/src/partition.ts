import { YuanError, type PluginRegistry } from '@yuan/core';
import { planRegistry } from './own.js';
import type { PartitionContext, PartitionPlugin } from './plugins.js';
import { vShapePartition } from './zbv-auto.js';

const BLOCKS_SYNTAX = 'comma-separated layer counts such as 2,2,3,3 or repeats such as 2x10,3x20,2x2';

/** True when `spec` looks like explicit blocks (starts with a digit) rather than a partitioner name. */
export function isBlocksSpec(spec: string): boolean {
  return /^\s*\d/.test(spec);
}

/**
 * Parses explicit blocks: `2,2,3,3,4,4,4,2` or with repeats `2x10,3x20,2x2` (also `2*10`, `2×10`), the
 * Megatron fork's `--pipeline-model-parallel-blocks` with YUAN 2.0-102B's shorthand (spec §5.1). Throws a one-line
 * error for anything else, or a block of 0 layers.
 */
export function parseBlocks(spec: string): number[] {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)\s*(?:[x×*]\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new YuanError('usage', `partition blocks "${spec}" are not valid: expected ${BLOCKS_SYNTAX}`);
    const layers = Number(m[1]);
    const repeat = m[2] === undefined ? 1 : Number(m[2]);
    if (layers < 1)
      throw new YuanError(
        'usage',
        `partition blocks "${spec}" give a stage 0 layers; every stage needs at least one layer`,
      );
    if (repeat < 1) throw new YuanError('usage', `partition blocks "${spec}" repeat a block 0 times`);
    for (let i = 0; i < repeat; i++) out.push(layers);
  }
  return out;
}

/** Formats blocks compactly with repeats, e.g. [2,2,3,3,3] → `2x2,3x3`. */
export function formatBlocks(blocks: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < blocks.length;) {
    let j = i;
    while (j < blocks.length && blocks[j] === blocks[i]) j++;
    parts.push(j - i > 1 ? `${blocks[i]}x${j - i}` : String(blocks[i]));
    i = j;
  }
  return parts.join(',');
}

/** Checks a split against L and P exactly as the Megatron fork does (sum = L, count = P), plus ≥ 1 layer each. */
export function checkBlocks(
  blocks: readonly number[],
  layers: number,
  stages: number,
  what = 'partition blocks',
): void {
  const shown = blocks.join(',');
  if (blocks.length !== stages) {
    throw new YuanError('usage', `${what} ${shown} give ${blocks.length} stage(s); the pipeline has ${stages} (--pp)`);
  }
  const sum = blocks.reduce((a, b) => a + b, 0);
  if (sum !== layers) throw new YuanError('usage', `${what} ${shown} sum to ${sum} layers; the model has ${layers}`);
  if (blocks.some((b) => !Number.isInteger(b) || b < 1)) {
    throw new YuanError('usage', `${what} ${shown}: every stage needs a whole number of layers, at least one`);
  }
}

function checkShape(ctx: PartitionContext): void {
  const { layers, stages } = ctx;
  if (!Number.isInteger(layers) || layers < 1)
    throw new YuanError('usage', `layers must be an integer >= 1 (got ${layers})`);
  if (!Number.isInteger(stages) || stages < 1)
    throw new YuanError('usage', `pipeline stages must be an integer >= 1 (got ${stages})`);
  if (stages > layers) {
    throw new YuanError(
      'usage',
      `more pipeline stages (${stages}) than layers (${layers}): every stage needs at least one layer`,
    );
  }
}

/**
 * The split of L layers into P contiguous stages (each ≥ 1 layer) that minimises the largest `cost(stage,
 * firstLayer, count)`, ties broken by the smaller sum of costs. Exact, by dynamic programming over (stage, layers
 * used): O(P·L²) cost evaluations.
 */
export function minMaxSplit(
  layers: number,
  stages: number,
  cost: (stage: number, first: number, count: number) => number,
): number[] {
  const INF = Number.POSITIVE_INFINITY;
  // best[i][j]: the best [max, sum] for stages 0..i−1 covering layers 0..j−1; from[i][j]: where stage i−1 starts
  const best: [number, number][][] = Array.from({ length: stages + 1 }, () =>
    Array.from({ length: layers + 1 }, () => [INF, INF] as [number, number]),
  );
  const from: number[][] = Array.from({ length: stages + 1 }, () => new Array<number>(layers + 1).fill(-1));
  best[0][0] = [Number.NEGATIVE_INFINITY, 0];
  for (let i = 1; i <= stages; i++) {
    // stage i−1 must leave at least one layer for each later stage
    for (let j = i; j <= layers - (stages - i); j++) {
      for (let k = i - 1; k < j; k++) {
        const prev = best[i - 1][k];
        if (prev[0] === INF) continue;
        const c = cost(i - 1, k, j - k);
        const cand: [number, number] = [Math.max(prev[0], c), prev[1] + c];
        const cur = best[i][j];
        if (cand[0] < cur[0] || (cand[0] === cur[0] && cand[1] < cur[1])) {
          best[i][j] = cand;
          from[i][j] = k;
        }
      }
    }
  }
  const out = new Array<number>(stages);
  for (let i = stages, j = layers; i > 0; i--) {
    const k = from[i][j];
    out[i - 1] = j - k;
    j = k;
  }
  return out;
}

/** `uniform`: ⌊L/P⌋ layers per stage, the remainder one each to the first stages (DeepSpeed's `partition_uniform`). */
export const uniformPartition: PartitionPlugin = {
  kind: 'partition',
  name: 'uniform',
  description: 'floor(L/P) layers per stage, the remainder to the first stages (DeepSpeed)',
  defaults: {},
  partition({ layers, stages }) {
    const base = Math.floor(layers / stages);
    const extra = layers % stages;
    return Array.from({ length: stages }, (_, i) => base + (i < extra ? 1 : 0));
  },
};

/**
 * `parameters`: the split whose largest stage parameter count is smallest, counting the embedding on the first stage
 * and the final norm plus the tied output projection on the last (exact min-max search).
 */
export const parametersPartition: PartitionPlugin = {
  kind: 'partition',
  name: 'parameters',
  description: 'balanced by parameter count (embedding on the first stage, final norm and head on the last)',
  defaults: {},
  partition(ctx) {
    const per = ctx.layerParameters;
    if (!per || per.length !== ctx.layers) {
      throw new YuanError(
        'usage',
        'partition "parameters" needs the per-layer parameter counts of the model (give a model shape or preset)',
      );
    }
    const prefix = [0];
    for (const p of per) prefix.push(prefix[prefix.length - 1] + p);
    return minMaxSplit(
      ctx.layers,
      ctx.stages,
      (stage, first, count) =>
        prefix[first + count] -
        prefix[first] +
        (stage === 0 ? (ctx.firstStageParameters ?? 0) : 0) +
        (stage === ctx.stages - 1 ? (ctx.lastStageParameters ?? 0) : 0),
    );
  },
};

/**
 * `memory`: the split that minimises the largest predicted stage peak memory (the planner's `stagePeakBytes`, which
 * accounts for the schedule's in-flight micro-batches, the recompute setting, embedding and head), exact min-max search.
 */
export const memoryPartition: PartitionPlugin = {
  kind: 'partition',
  name: 'memory',
  description:
    'minimises the largest predicted stage peak memory under the schedule, recompute and micro-batches (exact search)',
  defaults: {},
  partition(ctx) {
    if (!ctx.stagePeakBytes) {
      throw new YuanError(
        'usage',
        'partition "memory" needs the memory model (model shape, micro-batches, schedule, recompute): use it through planPipeline or `yuan plan`',
      );
    }
    return minMaxSplit(ctx.layers, ctx.stages, ctx.stagePeakBytes);
  },
};

/**
 * `v-shape`: layers per virtual stage of a V (`stages` = 2P blocks, rank r holding r and 2P − 1 − r) for the
 * cost-aware ZB-V (`zb-v-auto`), chosen by simulating it from the per-layer pass times and the embedding / head
 * extra times (`vShapePartition`). Needs `layerCosts`, `microbatches` and `ranks` = stages / 2 (the planner gives
 * them under a two-chunk schedule).
 */
export const vShapePartitionPlugin: PartitionPlugin = {
  kind: 'partition',
  name: 'v-shape',
  description:
    'layers per virtual stage of a V, chosen by simulating zb-v-auto from per-layer F, I, W (and embedding/head)',
  defaults: {},
  partition(ctx) {
    if (!ctx.layerCosts || !ctx.microbatches)
      throw new YuanError(
        'usage',
        'partition "v-shape" needs per-layer pass times and the micro-batches: use it through planPipeline or `yuan plan`',
      );
    const ranks = ctx.ranks ?? ctx.stages;
    if (ctx.stages !== 2 * ranks)
      throw new YuanError(
        'usage',
        `partition "v-shape" splits a V of 2 chunks per rank, but the schedule has ${ctx.stages} stage(s) on ${ranks} rank(s): use it with zb-v-auto or zb-v`,
      );
    return vShapePartition({
      layers: ctx.layers,
      ranks,
      microbatches: ctx.microbatches,
      layerCosts: ctx.layerCosts,
      ...(ctx.firstStageCosts ? { firstCosts: ctx.firstStageCosts } : {}),
      ...(ctx.lastStageCosts ? { lastCosts: ctx.lastStageCosts } : {}),
    });
  },
};

/**
 * Layers per stage for `spec`: explicit blocks (`2,2,3,3`, `2x10,3x20,2x2`, or an array) or the name of a
 * partitioner in `registry` (kind `partition`; default: a registry of this package's `uniform`, `parameters` and `memory`). The result has length P,
 * sums to L and gives every stage at least one layer. One-line errors: more stages than layers, blocks that do not
 * sum to L or do not count P, malformed blocks, an unknown partitioner (listing the registered names), a partitioner
 * missing the inputs it needs.
 */
export function partitionLayers(
  spec: string | readonly number[],
  ctx: PartitionContext,
  registry: PluginRegistry = planRegistry(),
): number[] {
  checkShape(ctx);
  if (typeof spec !== 'string' || isBlocksSpec(spec)) {
    const blocks = typeof spec === 'string' ? parseBlocks(spec) : [...spec];
    checkBlocks(blocks, ctx.layers, ctx.stages);
    return blocks;
  }
  const name = spec.trim();
  if (!registry.has('partition', name)) {
    throw new YuanError(
      'not-found',
      `unknown partition "${name}" (registered: ${registry.names('partition').join(', ') || 'none'}; or give blocks such as 2,2,3,3)`,
    );
  }
  const blocks = registry.get('partition', name).partition(ctx);
  checkBlocks(blocks, ctx.layers, ctx.stages, `partition "${name}" returned blocks`);
  return blocks;
}
