import type { JsonObject } from './merge.js';
import { moduleRegistry } from './plugin-loader.js';
import type { PluginBase, PluginRegistry } from './registry.js';

/**
 * A preset (registry kind `preset`): a named starting point for a config, a partial config merged over the defaults
 * (`--preset NAME`). Core registers the built-in ones; a plugin package can ship its own in its `plugins` list.
 */
export interface Preset extends PluginBase<'preset', Record<string, never>> {
  /** The partial config: any sections of a config file (`model`, `attention`, `tokenizer`, `parallel`, `train`, ...). */
  readonly config: JsonObject;
}

const YUAN_VOCAB = 135040; // 134,953 SentencePiece pieces padded to a multiple of 128

function yuan(
  name: string,
  description: string,
  numLayers: number,
  hiddenSize: number,
  numHeads: number,
  maxPositions: number,
  parallel?: JsonObject,
): Preset {
  return {
    kind: 'preset',
    name,
    description,
    defaults: {},
    config: {
      preset: name,
      model: { vocabSize: YUAN_VOCAB, hiddenSize, numLayers, numHeads, ffnSize: 4 * hiddenSize, maxPositions },
      attention: { name: 'lfa', options: {} },
      tokenizer: { name: 'sentencepiece' },
      ...(parallel ? { parallel } : {}),
    },
  };
}

/** The byte-level tokenizer's vocabulary (256 bytes and its special tokens, padded). */
const BYTE_VOCAB = 264;

function tiny(
  name: string,
  attention: string,
  description: string,
  parallel?: JsonObject,
  model: JsonObject = { hiddenSize: 128, numLayers: 4, numHeads: 4, ffnSize: 512, maxPositions: 512 },
): Preset {
  return {
    kind: 'preset',
    name,
    description,
    defaults: {},
    config: {
      preset: name,
      model: { vocabSize: BYTE_VOCAB, ...model },
      attention: { name: attention, options: {} },
      tokenizer: { name: 'bytes' },
      ...(parallel ? { parallel } : {}),
    },
  };
}

/**
 * The released training layouts (YUAN2-SPEC §5.1, §5.3–5.4; `examples/pretrain_yuan2.0_{51B,102B}.sh`): a non-uniform
 * block split under 1F1B with Megatron's distributed optimizer (ZeRO-1) and a global batch of 1152 sequences of
 * micro-batch 1 (M = 1152 for the whole job). 102B: PP 32 × DP 3 (Appendix D: 96 GPUs) with ZeRO-1. 51B: PP 16; its
 * DP is not fixed by the script (it follows the node count), so D and ZeRO are left to the run (`--dp D --zero 1` gives
 * the released distributed optimizer; ZeRO over D = 1 would shard nothing). Recompute is `full` (every layer's input kept,
 * each layer recomputed), as the scripts' `--recompute-granularity full` (their `--recompute-method block` is not offered).
 */
const YUAN2_51B_LAYOUT: JsonObject = {
  pp: 16,
  partition: '2x5,3x10,2',
  schedule: '1f1b',
  recompute: 'full',
  microbatches: 1152,
};
const YUAN2_102B_LAYOUT: JsonObject = {
  pp: 32,
  dp: 3,
  zero: 1,
  partition: '2x10,3x20,2x2',
  schedule: '1f1b',
  recompute: 'full',
  microbatches: 1152,
};

/**
 * The built-in presets: the released YUAN 2.0 shapes (arXiv 2311.15786; 51B and 102B with their training layouts in
 * `parallel`), tiny ones that train on a laptop (`tiny-pp2dp2`: a P × D layout with ZeRO-1) and `yuan-25m`, a ~25M-parameter
 * byte-level LFA model (the train-step benchmark's size at sequence 512).
 */
export const PRESETS: readonly Preset[] = [
  yuan('yuan2-2b', 'YUAN 2.0-2B: 24 layers, hidden 2048, 32 heads, LFA, seq 8192', 24, 2048, 32, 8192),
  yuan(
    'yuan2-51b',
    'YUAN 2.0-51B: 42 layers, hidden 8192, 64 heads, LFA, seq 4096; released layout PP 16 (blocks 2x5,3x10,2), 1F1B, M 1152 (its DP follows the node count)',
    42,
    8192,
    64,
    4096,
    YUAN2_51B_LAYOUT,
  ),
  yuan(
    'yuan2-102b',
    'YUAN 2.0-102B: 84 layers, hidden 8192, 64 heads, LFA, seq 4096; released layout PP 32 × DP 3 (blocks 2x10,3x20,2x2), ZeRO-1, 1F1B, M 1152',
    84,
    8192,
    64,
    4096,
    YUAN2_102B_LAYOUT,
  ),
  tiny('tiny-mha', 'mha', 'tiny byte-level model with basic multi-head attention (4 layers, hidden 128)'),
  tiny('tiny-lfa', 'lfa', 'tiny byte-level model with YUAN 2.0 LFA (4 layers, hidden 128)'),
  tiny(
    'tiny-lpa',
    'lpa',
    'tiny byte-level model with Low-dimensional Projected Attention, rank hidden/4 (4 layers, hidden 128)',
  ),
  tiny(
    'tiny-pp2dp2',
    'lfa',
    'tiny-lfa as 2 pipeline stages × 2 data-parallel ranks with ZeRO-1 (4 thread ranks), 4 micro-batches per step',
    { pp: 2, dp: 2, zero: 1, microbatches: 4 },
  ),
  // 8 layers × 3,148,032 (LFA: q/k 2H², v and o H² each, two kernel-2 convolutions H²/2 + H/2 and H²/2 + H, three
  // RMSNorms 3H; SwiGLU 3·H·F) + the tied byte embedding 264 × 512 + the final norm 512 = 25,319,936 parameters,
  // 99.5% of them in the layers (the real 135k vocabulary would add 69M in the embedding alone)
  tiny(
    'yuan-25m',
    'lfa',
    'about 25M parameters for speed work on a laptop: byte-level, YUAN 2.0 LFA, 8 layers, hidden 512, 8 heads, ffn 1024, seq up to 1024',
    undefined,
    { hiddenSize: 512, numLayers: 8, numHeads: 8, ffnSize: 1024, maxPositions: 1024 },
  ),
];

let builtins: PluginRegistry | undefined;

/**
 * The preset of that name in `registry` (kind `preset`; default: a registry of core's built-in presets, as the CLI
 * registers them). An unknown name is an error that lists the registered presets.
 */
export function getPreset(
  name: string,
  registry: PluginRegistry = (builtins ??= moduleRegistry({ plugins: PRESETS }, '@yuan/core')),
): Preset {
  return registry.get('preset', name);
}
