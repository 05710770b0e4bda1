import { bool, ConfigError, num, obj, YuanError, type ParameterSpec } from '@yuan/core';
import { tf, type AdapterLayer, type LinearHook, type TensorAdapterPlugin } from '@yuan/tensor';

/** LoRA options; the defaults are PEFT's `LoraConfig` defaults (with its LLaMA target modules). */
export interface LoraOptions {
  /** Rank r: A is [r, in], B is [out, r]. Default 8. */
  rank: number;
  /** The update is scaled by alpha / r (alpha / √r with `rslora`). Default 8. */
  alpha: number;
  /** Dropout probability on the adapter's input while training (PEFT's `lora_dropout`). Default 0. */
  dropout: number;
  /**
   * The linear layers adapted, by Hugging Face module name as PEFT's `target_modules`: a list of names (a module
   * matches when its full name equals one or ends with `.` + one, e.g. `q_proj`, `up_proj`), `"all-linear"` (every
   * linear layer of the decoder layers), or another string, a regular expression the full module name must match
   * whole (e.g. `model\.layers\.[01]\..*_proj`). Default `["q_proj", "v_proj"]`.
   */
  targets: string[] | string;
  /** Rank-stabilised scaling alpha / √r (PEFT's `use_rslora`). Default false. */
  rslora: boolean;
}

/** PEFT's `LoraConfig` defaults: r 8, alpha 8, no dropout, q_proj and v_proj. */
export const LORA_DEFAULTS: LoraOptions = {
  rank: 8,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'v_proj'],
  rslora: false,
};

const scalars = obj({
  rank: num({ int: true, min: 1 }),
  alpha: num({ gt: 0 }),
  dropout: num({ min: 0, max: 0.999999 }),
  rslora: bool(),
});

/** Validates LoRA options (merged over the defaults); a bad one is named with its value (`adapter.options.<field>`). */
export function parseLoraOptions(options: Record<string, unknown>): LoraOptions {
  const { targets, ...rest } = options;
  const parsed = scalars.parse(rest, 'adapter.options') as Omit<LoraOptions, 'targets'>;
  const list =
    Array.isArray(targets) && targets.length > 0 && targets.every((t) => typeof t === 'string' && /^[\w.]+$/.test(t));
  if (!list && !(typeof targets === 'string' && targets.length > 0)) {
    throw new ConfigError(
      `invalid config: adapter.options.targets = ${JSON.stringify(targets)}; expected a non-empty list of module names (e.g. ["q_proj", "v_proj"]), "all-linear" or a regular expression`,
    );
  }
  if (typeof targets === 'string' && targets !== 'all-linear') {
    try {
      new RegExp(targets);
    } catch (e) {
      throw new ConfigError(
        `invalid config: adapter.options.targets = ${JSON.stringify(targets)} is not a regular expression (${(e as Error).message})`,
      );
    }
  }
  return { ...parsed, targets: targets as string[] | string };
}

/** The scale of the update: alpha / r, or alpha / √r with rslora (PEFT's `scaling`). */
export function loraScale(o: LoraOptions): number {
  return o.rslora ? o.alpha / Math.sqrt(o.rank) : o.alpha / o.rank;
}

/** One linear module (a Hugging Face `nn.Linear`) of the base model: inside the stored weight `weight`, rows [row, row + out). */
interface LinearModule {
  /** Full module name, e.g. `model.layers.0.self_attn.q_proj`. */
  module: string;
  /** The stored (possibly fused) parameter that holds it. */
  weight: string;
  row: number;
  out: number;
  in: number;
}

/** Every linear module of the decoder layers: 2-D `*.weight` specs under `model.layers.`, fused ones split into their parts. */
function linearModules(specs: readonly ParameterSpec[]): LinearModule[] {
  const out: LinearModule[] = [];
  for (const s of specs) {
    if (s.shape.length !== 2 || !s.name.startsWith('model.layers.') || !s.name.endsWith('.weight')) continue;
    const parts = s.parts ?? [s.name];
    const rows = s.shape[0] / parts.length;
    parts.forEach((p, i) =>
      out.push({ module: p.slice(0, -'.weight'.length), weight: s.name, row: i * rows, out: rows, in: s.shape[1] }),
    );
  }
  return out;
}

/** Whether a module name matches a PEFT `target_modules` list entry: equal, or ending in `.` + the entry. */
function matchesName(module: string, target: string): boolean {
  return module === target || module.endsWith(`.${target}`);
}

/** The modules the options target (PEFT's matching); a listed name that matches no module is a ConfigError. */
function targetedModules(specs: readonly ParameterSpec[], o: LoraOptions): LinearModule[] {
  const all = linearModules(specs);
  const names = [...new Set(all.map((m) => m.module.slice(m.module.lastIndexOf('.') + 1)))];
  const targets = o.targets;
  if (Array.isArray(targets)) {
    const missing = targets.filter((t) => !all.some((m) => matchesName(m.module, t)));
    if (missing.length) {
      throw new ConfigError(
        `invalid config: adapter.options.targets: ${missing.map((t) => JSON.stringify(t)).join(', ')} ${missing.length === 1 ? 'matches' : 'match'} no linear layer of this model (its linear layers: ${names.join(', ')})`,
      );
    }
    return all.filter((m) => targets.some((t) => matchesName(m.module, t)));
  }
  if (targets === 'all-linear') return all;
  const re = new RegExp(`^(?:${targets})$`);
  const chosen = all.filter((m) => re.test(m.module));
  if (chosen.length === 0) {
    const hint = /^\w+$/.test(targets)
      ? `; a string is a regular expression over full module names, as in PEFT: give a list, ["${targets}"], for modules named ${targets}`
      : '';
    throw new ConfigError(
      `invalid config: adapter.options.targets = ${JSON.stringify(targets)} matches no linear layer of this model (its linear layers: ${names.join(', ')})${hint}`,
    );
  }
  return chosen;
}

/** FNV-1a of a name (a weight's part of its dropout seeds). */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A 32-bit mix of two integers (the dropout seed of one hook call). */
function mix(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * LoRA (Hu et al. 2021, arXiv 2106.09685) as Hugging Face PEFT computes it: an adapted linear layer returns
 * base(x) + (dropout(x)·Aᵀ)·Bᵀ·scale with A [r, in] (PEFT's `lora_A.weight`, kaiming-uniform: U(±1/√in)) and
 * B [out, r] (`lora_B.weight`, zeros), scale = alpha / r. `base(x)` is the layer's own product, so the frozen weight
 * may be held in any format with a linear kernel. A fused weight (`qk_proj` = [q_proj; k_proj], `up_gate_proj` =
 * [up_proj; gate_proj]) computes its parts' outputs side by side, so each part's update lands on its own block of
 * output columns, exactly where the Hugging Face modules' outputs are concatenated.
 */
export const loraAdapter: TensorAdapterPlugin<LoraOptions> = {
  kind: 'adapter',
  name: 'lora',
  description:
    'LoRA: low-rank updates B·A (rank, alpha, dropout) on chosen linear layers of a frozen base; Hugging Face PEFT files',
  defaults: LORA_DEFAULTS,
  peftType: 'LORA',
  validate: parseLoraOptions,
  parameters(specs, o) {
    const uniform = (fanIn: number) => ({ kind: 'uniform', bound: 1 / Math.sqrt(fanIn) }) as const;
    return targetedModules(specs, o).flatMap((m): ParameterSpec[] => [
      { name: `${m.module}.lora_A.weight`, shape: [o.rank, m.in], init: uniform(m.in) },
      { name: `${m.module}.lora_B.weight`, shape: [m.out, o.rank], init: { kind: 'zeros' } },
    ]);
  },
  create(specs, o, param): AdapterLayer {
    const scale = loraScale(o);
    const targeted = targetedModules(specs, o);
    // per adapted stored weight: its row blocks (one, or one per fused part), each with its A and B or none
    const weights = new Map<
      string,
      { out: number; in: number; rows: number; blocks: Array<{ a: tf.Tensor2D; b: tf.Tensor2D } | undefined> }
    >();
    for (const s of specs) {
      const mods = targeted.filter((m) => m.weight === s.name);
      if (mods.length === 0) continue;
      const count = s.parts?.length ?? 1;
      const rows = s.shape[0] / count;
      const blocks = Array.from({ length: count }, (_, i) => {
        const m = mods.find((x) => x.row === i * rows);
        return m
          ? {
              a: param(`${m.module}.lora_A.weight`) as tf.Tensor2D,
              b: param(`${m.module}.lora_B.weight`) as tf.Tensor2D,
            }
          : undefined;
      });
      weights.set(s.name, { out: s.shape[0], in: s.shape[1], rows, blocks });
    }
    // dropout masks: from the training seed, the weight's name, the count of its hook's calls since `training` and the
    // block, so a pass that runs again after `training(sameSeed)` (a recomputed layer) draws the same masks
    let seed: number | undefined;
    const calls = new Map<string, number>();
    const hooks = new Map<string, LinearHook>();
    for (const [name, w] of weights) {
      const nameHash = hashName(name);
      hooks.set(name, (x, base) => {
        const lead = x.shape.slice(0, -1);
        const x2 = tf.reshape(x, [-1, w.in]) as tf.Tensor2D;
        const n = x2.shape[0];
        const call = calls.get(name) ?? 0;
        calls.set(name, call + 1);
        const updates = w.blocks.map((ab, block) => {
          if (!ab) return tf.zeros([n, w.rows]);
          const input =
            seed !== undefined && o.dropout > 0
              ? tf.dropout(x2, o.dropout, undefined, mix(mix(seed, nameHash), call * 8 + block))
              : x2;
          return tf.matMul(tf.mul(tf.matMul(input, ab.a, false, true), scale), ab.b, false, true);
        });
        const update = updates.length === 1 ? updates[0] : tf.concat(updates, 1);
        return tf.add(base(x), tf.reshape(update, [...lead, w.out]));
      });
    }
    return {
      hooks,
      delta(name) {
        const w = weights.get(name);
        if (!w) throw new YuanError('adapter', `the lora adapter does not adapt ${name}`);
        return tf.tidy(() => {
          const blocks = w.blocks.map((ab) => (ab ? tf.mul(tf.matMul(ab.b, ab.a), scale) : tf.zeros([w.rows, w.in])));
          return (blocks.length === 1 ? blocks[0] : tf.concat(blocks, 0)) as tf.Tensor2D;
        });
      },
      training(s) {
        seed = s;
        calls.clear();
      },
    };
  },
  toPeftConfig(o, base) {
    return {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: base,
      revision: null,
      inference_mode: true,
      r: o.rank,
      target_modules: o.targets,
      lora_alpha: o.alpha,
      lora_dropout: o.dropout,
      fan_in_fan_out: false,
      bias: 'none',
      use_rslora: o.rslora,
      modules_to_save: null,
      init_lora_weights: true,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
      use_dora: false,
    };
  },
  fromPeftConfig: loraFromPeft,
};

/**
 * PEFT `LoraConfig` settings yuan's LoRA does not implement, with the value that means "off": an adapter_config.json
 * that sets one otherwise is refused with its name rather than loaded with a different meaning.
 */
const UNSUPPORTED: Array<[key: string, off: unknown]> = [
  ['bias', 'none'],
  ['fan_in_fan_out', false],
  ['use_dora', false],
  ['rank_pattern', {}],
  ['alpha_pattern', {}],
  ['modules_to_save', null],
  ['layers_to_transform', null],
  ['layers_pattern', null],
  ['exclude_modules', null],
  ['trainable_token_indices', null],
  ['layer_replication', null],
  ['lora_bias', false],
  ['target_parameters', null],
  ['use_qalora', false],
  ['use_bdlora', null],
  ['alora_invocation_tokens', null],
];

function isOff(value: unknown, off: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0 && (off === null || Array.isArray(off));
  if (typeof value === 'object' && typeof off === 'object') return Object.keys(value as object).length === 0;
  return value === off;
}

/** LoRA options from PEFT's adapter_config.json (`peft_type` LORA); a setting yuan does not implement is a YuanError naming it. */
function loraFromPeft(json: Record<string, unknown>, file: string): LoraOptions {
  if (json.peft_type !== 'LORA')
    throw new YuanError('adapter', `${file}: peft_type is ${JSON.stringify(json.peft_type)}, not "LORA"`);
  for (const [key, off] of UNSUPPORTED) {
    if (!isOff(json[key], off))
      throw new YuanError(
        'adapter',
        `${file}: ${key} = ${JSON.stringify(json[key])} is a PEFT LoRA setting yuan does not implement (it needs ${JSON.stringify(off)})`,
      );
  }
  const targets = json.target_modules;
  if (targets === null || targets === undefined)
    throw new YuanError('adapter', `${file}: target_modules is not set; yuan needs the adapted module names`);
  try {
    return parseLoraOptions({
      rank: json.r ?? LORA_DEFAULTS.rank,
      alpha: json.lora_alpha ?? LORA_DEFAULTS.alpha,
      dropout: json.lora_dropout ?? LORA_DEFAULTS.dropout,
      targets,
      rslora: json.use_rslora ?? false,
    });
  } catch (e) {
    const m = (e as Error).message.replace(/^invalid config: adapter\.options\./, '');
    throw new YuanError(
      'adapter',
      `${file}: ${m
        .replace(/^rank/, 'r')
        .replace(/^alpha/, 'lora_alpha')
        .replace(/^dropout/, 'lora_dropout')
        .replace(/^targets/, 'target_modules')}`,
    );
  }
}
