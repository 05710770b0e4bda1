import { YuanError } from '@yuan/core';

/**
 * Layers per stage from `uniform` (remainder to the first stages, as DeepSpeed's `partition_uniform`) or explicit
 * blocks `2,2,3,3` with repeats `2x10,3x20` (the Megatron fork's `--pipeline-model-parallel-blocks`). Errors (one
 * line): more stages than layers, blocks that do not sum to the layer count, a block count that differs from the
 * stage count, a block that is not a positive integer. (A local parser: the package's partitioner plugins replace it.)
 */
export function parsePartition(spec: string, stages: number, layers: number): number[] {
  if (!(Number.isInteger(stages) && stages >= 1)) throw new YuanError('usage', `--pp must be a positive integer, got ${stages}`);
  if (stages > layers) throw new YuanError('usage', `--pp ${stages} has more stages than the model's ${layers} layers`);
  if (spec === 'uniform') {
    const base = Math.floor(layers / stages);
    return Array.from({ length: stages }, (_, i) => base + (i < layers % stages ? 1 : 0));
  }
  const blocks: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)\s*(?:x\s*(\d+))?\s*$/.exec(part);
    if (!m || Number(m[1]) < 1 || (m[2] !== undefined && Number(m[2]) < 1)) {
      throw new YuanError('usage', `--partition "${spec}": "${part}" is not a block size (expected uniform or sizes like 2,2,3,3 or 2x10,3x20)`);
    }
    for (let i = 0; i < Number(m[2] ?? 1); i++) blocks.push(Number(m[1]));
  }
  const sum = blocks.reduce((a, b) => a + b, 0);
  if (sum !== layers) throw new YuanError('usage', `--partition ${spec} sums to ${sum} layers; the model has ${layers}`);
  if (blocks.length !== stages) throw new YuanError('usage', `--partition ${spec} has ${blocks.length} blocks for --pp ${stages} stages`);
  return blocks;
}
