// Checkpoints of a pipeline: every stage's weights (and, without a sharded optimizer, its AdamW moments) assembled into
// the whole model in rank 0's hands; under ZeRO 1/2 each rank writes its own optimizer shard file instead.
// Kept apart from the engines so that the checkpoint format can change in one place.
import { YuanError } from '@yuan/core';
import { modelParameters } from '@yuan/model';
import type { CheckpointContents, EngineSetup } from '@yuan/train';
import type { ProcessGroup } from '@yuan/comm';

/** One stage's state: weights and moments (`m.<name>`, `v.<name>`) by parameter name, and AdamW's step. */
export interface StageState {
  weights: [string, Float32Array][];
  moments: [string, Float32Array][];
  optimizerStep: number;
}

/**
 * The whole model's checkpoint from the states of stages 0 … P − 1 (index = stage): weights and moments in
 * whole-model order (`modelParameters`), the tied embedding from the first stage (the last stage's copy is identical).
 */
export function assembleCheckpoint(
  setup: Pick<EngineSetup, 'config' | 'attention'>,
  states: readonly StageState[],
  step: number,
  data: CheckpointContents['data'],
): CheckpointContents {
  const specs = modelParameters(setup.config, setup.attention);
  const weights = new Map<string, Float32Array>();
  const moments = new Map<string, Float32Array>();
  for (const s of [...states].reverse()) {
    for (const [n, a] of s.weights) weights.set(n, a);
    for (const [n, a] of s.moments) moments.set(n, a);
  }
  const ordered = new Map<string, Float32Array>();
  for (const sp of specs) {
    const w = weights.get(sp.name);
    if (!w) throw new YuanError('internal', `no stage holds ${sp.name}`);
    ordered.set(sp.name, w);
  }
  const orderedMoments = new Map<string, Float32Array>();
  for (const sp of specs)
    for (const k of ['m', 'v'])
      if (moments.has(`${k}.${sp.name}`)) orderedMoments.set(`${k}.${sp.name}`, moments.get(`${k}.${sp.name}`)!);
  return { step, weights: ordered, optimizer: { step: states[0].optimizerStep, moments: orderedMoments }, data };
}

/** A stage state as bytes: u32 LE header length, a JSON header (names, lengths, step), padding to 4, the float32 values. */
export function encodeStageState(s: StageState): Uint8Array {
  const entries = [...s.weights, ...s.moments];
  const header = new TextEncoder().encode(
    JSON.stringify({
      weights: s.weights.map(([n, a]) => [n, a.length]),
      moments: s.moments.map(([n, a]) => [n, a.length]),
      optimizerStep: s.optimizerStep,
    }),
  );
  const start = Math.ceil((4 + header.length) / 4) * 4;
  const total = entries.reduce((a, [, v]) => a + v.length, 0);
  const out = new Uint8Array(start + 4 * total);
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 4);
  const floats = new Float32Array(out.buffer, start, total);
  let at = 0;
  for (const [, v] of entries) {
    floats.set(v, at);
    at += v.length;
  }
  return out;
}

/** The inverse of `encodeStageState`; a short or malformed message is YuanError 'checkpoint' naming `from`. */
export function decodeStageState(bytes: Uint8Array, from: string): StageState {
  const bad = () =>
    new YuanError('checkpoint', `the stage state from ${from} is malformed (${bytes.byteLength} bytes)`);
  if (bytes.byteLength < 4) throw bad();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(0, true);
  let h: { weights: [string, number][]; moments: [string, number][]; optimizerStep: number };
  try {
    h = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + len)));
  } catch {
    throw bad();
  }
  const start = Math.ceil((4 + len) / 4) * 4;
  const total = [...h.weights, ...h.moments].reduce((a, [, n]) => a + n, 0);
  if (bytes.byteLength !== start + 4 * total) throw bad();
  const floats = new Float32Array(bytes.slice(start).buffer);
  let at = 0;
  const take = (list: [string, number][]) =>
    list.map(([n, k]): [string, Float32Array] => {
      const a = floats.slice(at, at + k);
      at += k;
      return [n, a];
    });
  const weights = take(h.weights);
  const moments = take(h.moments);
  return { weights, moments, optimizerStep: h.optimizerStep };
}

/**
 * Gathers a P × D pipeline's checkpoint to global rank 0 (stage 0, data rank 0), the writer: every rank passes its
 * stage's state (weights, identical on the stage's D ranks; moments only without a sharded optimizer, where they are
 * replicated too — under ZeRO 1/2 the moments are in the ranks' shard files); data rank 0 of stage s > 0 sends it to rank 0 (point-to-point over `world`, tag `ckpt:<step>`),
 * rank 0 assembles the whole model. Rank 0 gets the checkpoint; every other rank gets undefined. `stageRanks[s]` is
 * the global rank of stage s's data rank 0. Errors: a lost peer (from the transport, naming it).
 */
export async function gatherCheckpointToWriter(
  world: ProcessGroup,
  stageRanks: readonly number[],
  mine: StageState,
  setup: Pick<EngineSetup, 'config' | 'attention'>,
  step: number,
  data: CheckpointContents['data'],
): Promise<CheckpointContents | undefined> {
  const tag = `ckpt:${step}`;
  if (world.rank === 0) {
    const states: StageState[] = [mine];
    for (let s = 1; s < stageRanks.length; s++)
      states.push(decodeStageState(await world.recvBytes(stageRanks[s], tag), `rank ${stageRanks[s]} (stage ${s})`));
    return assembleCheckpoint(setup, states, step, data);
  }
  const s = stageRanks.indexOf(world.rank);
  if (s > 0) await world.send(0, encodeStageState(mine), tag);
  return undefined;
}
