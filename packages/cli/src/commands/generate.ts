import { YuanError } from '@yuan/core';
import { generateTokens } from '@yuan/model';
import { idListOption, numberOption, type Command } from '../command.js';
import { BACKEND_OPTION, CONFIG_OPTIONS, loadConfig, loadRegistry, openModel, openTokenizer } from '../context.js';

/** `yuan generate`: continue a prompt with a checkpoint or a freshly initialised preset, using the KV + LF caches. */
export const generateCommand: Command = {
  path: ['generate'],
  summary: 'generate text or ids from a checkpoint (--model) or a fresh preset (--preset)',
  usage:
    'yuan generate (--model DIR | --preset NAME [--seed S]) (--prompt TEXT [--tokenizer FILE.model|bytes] | --prompt-ids 1,2,3) ' +
    '--max-new-tokens N [--temperature T --top-k K --top-p P --sample-seed S] [--stop-ids 1,2] [--no-cache] [--json]',
  options: {
    model: { type: 'string' },
    ...CONFIG_OPTIONS,
    seed: { type: 'string' },
    prompt: { type: 'string' },
    'prompt-ids': { type: 'string' },
    tokenizer: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'sample-seed': { type: 'string' },
    'stop-ids': { type: 'string' },
    'no-cache': { type: 'boolean' },
    json: { type: 'boolean' },
    ...BACKEND_OPTION,
  },
  async run(values, _pos, io) {
    if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) {
      throw new YuanError('usage', `give exactly one of --prompt TEXT or --prompt-ids 1,2,3\nusage: ${generateCommand.usage}`);
    }
    const maxNewTokens = numberOption(values, 'max-new-tokens', 32, { int: true, min: 0 });
    const options = {
      maxNewTokens,
      temperature: numberOption(values, 'temperature', 0, { min: 0 }),
      topK: numberOption(values, 'top-k', 0, { int: true, min: 0 }),
      topP: numberOption(values, 'top-p', 1, { min: 0 }),
      seed: numberOption(values, 'sample-seed', 0, { int: true }),
      useCache: !values['no-cache'],
    };
    const registry = await loadRegistry(values, values.model === undefined && (values.preset || values.config) ? loadConfig(values) : values.config ? loadConfig(values) : undefined);
    const model = await openModel(values, registry);
    const tokenizer = values.prompt !== undefined ? await openTokenizer(registry, values.tokenizer as string | undefined, model.config) : undefined;
    const prompt = tokenizer ? tokenizer.encode(values.prompt as string) : idListOption(values['prompt-ids'] as string, 'prompt-ids');
    const stopIds = values['stop-ids'] ? idListOption(values['stop-ids'] as string, 'stop-ids') : tokenizer ? [tokenizer.special.eod] : [];
    const ids: number[] = [];
    const started = performance.now();
    let printed = 0;
    for (const id of generateTokens(model, prompt, { ...options, stopIds })) {
      ids.push(id);
      if (!values.json && tokenizer && io.isTTY) {
        const text = tokenizer.decode(ids);
        process.stdout.write(text.slice(printed));
        printed = text.length;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    model.dispose();
    const text = tokenizer?.decode(ids);
    if (values.json) io.out(JSON.stringify(text === undefined ? { ids } : { ids, text }));
    else if (tokenizer && io.isTTY) io.out(text!.slice(printed));
    else io.out(text ?? ids.join(','));
    io.err(`${ids.length} tokens in ${seconds.toFixed(2)} s (${(ids.length / seconds).toFixed(1)} tokens/s, cache ${options.useCache ? 'on' : 'off'})`);
  },
};
