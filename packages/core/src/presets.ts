import { NotFoundError } from './errors.js';
import type { JsonObject } from './merge.js';

/** A named starting point for a config: a partial config merged over the defaults. */
export interface Preset {
  name: string;
  description: string;
  config: JsonObject;
}

const YUAN_VOCAB = 135040; // 134,953 SentencePiece pieces padded to a multiple of 128

function yuan(name: string, description: string, numLayers: number, hiddenSize: number, numHeads: number, maxPositions: number): Preset {
  return {
    name,
    description,
    config: {
      preset: name,
      model: { vocabSize: YUAN_VOCAB, hiddenSize, numLayers, numHeads, ffnSize: 4 * hiddenSize, maxPositions },
      attention: { name: 'lfa', options: {} },
      tokenizer: { name: 'sentencepiece' },
    },
  };
}

function tiny(name: string, attention: string, description: string): Preset {
  return {
    name,
    description,
    config: {
      preset: name,
      model: { vocabSize: 264, hiddenSize: 128, numLayers: 4, numHeads: 4, ffnSize: 512, maxPositions: 512 },
      attention: { name: attention, options: {} },
      tokenizer: { name: 'bytes' },
    },
  };
}

/** The built-in presets: the released YUAN 2.0 shapes (arXiv 2311.15786) and tiny ones that train on a laptop. */
export const PRESETS: readonly Preset[] = [
  yuan('yuan2-2b', 'YUAN 2.0-2B: 24 layers, hidden 2048, 32 heads, LFA, seq 8192', 24, 2048, 32, 8192),
  yuan('yuan2-51b', 'YUAN 2.0-51B: 42 layers, hidden 8192, 64 heads, LFA, seq 4096', 42, 8192, 64, 4096),
  yuan('yuan2-102b', 'YUAN 2.0-102B: 84 layers, hidden 8192, 64 heads, LFA, seq 4096', 84, 8192, 64, 4096),
  tiny('tiny-mha', 'mha', 'tiny byte-level model with basic multi-head attention (4 layers, hidden 128)'),
  tiny('tiny-lfa', 'lfa', 'tiny byte-level model with YUAN 2.0 LFA (4 layers, hidden 128)'),
  tiny('tiny-lpa', 'lpa', 'tiny byte-level model with Low-dimensional Projected Attention, rank hidden/4 (4 layers, hidden 128)'),
];

/** The preset of that name; an unknown name is an error that lists the presets. */
export function getPreset(name: string, presets: readonly Preset[] = PRESETS): Preset {
  const found = presets.find((p) => p.name === name);
  if (!found) {
    throw new NotFoundError(`unknown preset "${name}" (presets: ${presets.map((p) => p.name).join(', ')})`);
  }
  return found;
}
