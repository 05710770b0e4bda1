import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeAtomic, YuanError, type JsonObject, type YuanConfig } from '@yuan/core';
import { requireString, type Command } from '../command.js';
import { BUILTIN_SOURCES, loadRegistry, PLUGIN_OPTION, setLayer } from '../context.js';

/** Files of the source folder that the converted folder gets as they are (tokenizer, generation config). */
const COPIED =
  /^(tokenizer.*|.*\.model|special_tokens_map\.json|added_tokens\.json|generation_config\.json|vocab\..*|merges\.txt)$/;

const DTYPES = { f32: 'F32', bf16: 'BF16', f16: 'F16' } as const;

/** `yuan convert --to NAME`: a checkpoint's attention layers rewritten for another attention plugin, same outputs. */
export const convertCommand: Command = {
  path: ['convert'],
  summary:
    "rewrite a checkpoint's attention for another attention plugin with the same outputs (--to mla: TransMLA from gqa/mha)",
  usage:
    'yuan convert --model DIR --to NAME --out DIR [--dtype f32|bf16|f16] [--plugin PKG ...] [--set k=v ...]\n' +
    "  each layer's attention weights are converted by the target plugin's `convert` (mla: GQA's K/V heads as the latent\n" +
    '  and RoPE keys, TransMLA); the other weights are kept, the tokenizer files copied; DIR is replaced whole or not at all.',
  options: {
    model: { type: 'string' },
    to: { type: 'string' },
    out: { type: 'string' },
    dtype: { type: 'string' },
    set: { type: 'string', multiple: true },
    ...PLUGIN_OPTION,
  },
  async run(values, _pos, io) {
    requireString(values, 'model', convertCommand);
    const to = requireString(values, 'to', convertCommand);
    const out = requireString(values, 'out', convertCommand);
    const dtypeFlag = (values.dtype as string | undefined) ?? 'f32';
    if (!(dtypeFlag in DTYPES))
      throw new YuanError('usage', `--dtype ${JSON.stringify(dtypeFlag)} must be f32, bf16 or f16`);
    const model = await import('@yuan/model');
    const registry = await loadRegistry(values);
    const target = registry.get('attention', to);
    if (!target.convert)
      throw new YuanError('usage', `attention plugin "${to}" cannot convert checkpoints (it has no convert)`);
    const base = model.resolveModelDir(values.model as string);
    const { config, attention, weights } = await model.readCheckpoint(
      base,
      model.attentionLookup(registry, BUILTIN_SOURCES),
      setLayer(values),
    );
    const from = {
      name: attention.name,
      options: model.attentionOptions(config, attention) as Record<string, unknown>,
    };
    const converted = new Map<string, Float32Array>();
    for (const [n, w] of weights) if (!/\.self_attn\./.test(n)) converted.set(n, w);
    let options: Record<string, unknown> = {};
    for (let l = 0; l < config.model.numLayers; l++) {
      const prefix = `model.layers.${l}.self_attn.`;
      const layer = new Map<string, Float32Array>();
      for (const [n, w] of weights) if (n.startsWith(prefix)) layer.set(n.slice(prefix.length), w);
      const r = target.convert(from, model.attentionSpec(config, l), layer);
      options = r.options as Record<string, unknown>;
      for (const [n, w] of r.weights) converted.set(prefix + n, w);
    }
    const next: YuanConfig = { ...config, attention: { name: to, options: options as JsonObject } };
    const specs = model.modelParameters(next, target as never);
    const copied: string[] = [];
    await writeAtomic(out.replace(/\/+$/, ''), async (tmp) => {
      await mkdir(tmp, { recursive: true });
      await model.writeModelFiles(tmp, next, specs, converted, DTYPES[dtypeFlag as keyof typeof DTYPES]);
      for (const name of await readdir(base)) {
        if (!COPIED.test(name) || !(await stat(path.join(base, name))).isFile()) continue;
        await copyFile(path.join(base, name), path.join(tmp, name));
        copied.push(name);
      }
    });
    io.err(
      `converted ${config.model.numLayers} attention layers of ${base} from ${from.name} to ${to} ${JSON.stringify(options)}${copied.length ? `; copied ${copied.join(', ')}` : ''}`,
    );
    io.out(`wrote ${out} (${dtypeFlag})`);
  },
};
