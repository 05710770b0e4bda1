import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeAtomic, YuanError } from '@yuan/core';
import { requireString, type Command } from '../command.js';
import { BACKEND_OPTION, BUILTIN_SOURCES, loadRegistry, PEFT_OPTION, PLUGIN_OPTION, setLayer } from '../context.js';

/** Files of a base folder that the merged folder gets as they are: the tokenizer's, the generation config, modeling code. */
const COPIED =
  /^(tokenizer.*|.*\.model|special_tokens_map\.json|added_tokens\.json|generation_config\.json|vocab\..*|merges\.txt|.*\.py)$/;

const DTYPES = { f32: 'F32', bf16: 'BF16', f16: 'F16' } as const;

/** `yuan adapter merge`: a base checkpoint with a PEFT adapter merged into its weights, written as a new checkpoint. */
export const adapterMerge: Command = {
  path: ['adapter', 'merge'],
  summary:
    "merge a PEFT adapter (LoRA) into its base checkpoint's weights and write a plain checkpoint (no adapter needed to run it)",
  usage:
    'yuan adapter merge --model BASE_DIR --peft ADAPTER_DIR --out DIR [--dtype f32|bf16|f16] [--backend NAME]\n' +
    "  W + scale·B·A for every adapted weight (fused q/k and up/gate weights get each part's update in its own rows); the other\n" +
    '  files of BASE_DIR (tokenizer, modeling code) are copied; DIR is replaced whole or not at all. Default dtype f32.',
  options: {
    model: { type: 'string' },
    out: { type: 'string' },
    dtype: { type: 'string' },
    set: { type: 'string', multiple: true },
    ...PEFT_OPTION,
    ...PLUGIN_OPTION,
    ...BACKEND_OPTION,
  },
  async run(values, _pos, io) {
    requireString(values, 'model', adapterMerge);
    const peft = requireString(values, 'peft', adapterMerge);
    const out = requireString(values, 'out', adapterMerge);
    const dtypeFlag = (values.dtype as string | undefined) ?? 'f32';
    if (!(dtypeFlag in DTYPES))
      throw new YuanError('usage', `--dtype ${JSON.stringify(dtypeFlag)} must be f32, bf16 or f16`);
    const dtype = DTYPES[dtypeFlag as keyof typeof DTYPES];
    const model = await import('@yuan/model');
    const { initBackend } = await import('@yuan/tensor');
    const registry = await loadRegistry(values);
    const base = model.resolveModelDir(values.model as string);
    const { config, attention, weights, ignored } = await model.readCheckpoint(
      base,
      model.attentionLookup(registry, BUILTIN_SOURCES),
      setLayer(values),
    );
    if (ignored.length) io.err(model.ignoredTensorsNote(base, ignored));
    const adapterDir = model.resolveAdapterDir(peft);
    const files = await model.readAdapterFiles(adapterDir, model.adapterLookup(registry));
    await initBackend(values.backend as string | undefined);
    const specs = model.modelParameters(config, attention);
    const adapter = model.adapterFromFiles(files, specs, path.join(adapterDir, model.ADAPTER_WEIGHTS));
    let merged: Map<string, Float32Array>;
    try {
      merged = adapter.merge(weights);
    } finally {
      adapter.dispose();
    }
    const changed = [...merged].filter(([n, w]) => w !== weights.get(n)).length;
    const copied: string[] = [];
    await writeAtomic(out.replace(/\/+$/, ''), async (tmp) => {
      await mkdir(tmp, { recursive: true });
      await model.writeModelFiles(tmp, config, specs, merged, dtype);
      for (const name of await readdir(base)) {
        if (!COPIED.test(name) || !(await stat(path.join(base, name))).isFile()) continue;
        await copyFile(path.join(base, name), path.join(tmp, name));
        copied.push(name);
      }
    });
    io.err(
      `merged the ${files.plugin.name} adapter ${adapterDir} into ${changed} weights of ${base}${copied.length ? `; copied ${copied.join(', ')}` : ''}`,
    );
    io.out(`wrote ${out} (${dtypeFlag})`);
  },
};
