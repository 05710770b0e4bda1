import { YuanError } from '@yuan/core';
import { generateTokens } from '@yuan/model';
import { CompletionText } from '@yuan/tokenizer';
import { idListOption, numberOption, type Command } from '../command.js';
import {
  BACKEND_OPTION,
  CONFIG_OPTIONS,
  loadConfig,
  loadRegistry,
  openModel,
  openTokenizer,
  PEFT_OPTION,
} from '../context.js';

/** `yuan generate`: continue a prompt with a checkpoint or a freshly initialised preset, using the KV + LF caches. */
export const generateCommand: Command = {
  path: ['generate'],
  summary: 'generate text or ids from a checkpoint (--model) or a fresh preset (--preset)',
  usage:
    'yuan generate (--model DIR | --preset NAME [--seed S] [--weights fp32|bf16|int8|int4]) [--peft ADAPTER_DIR] (--prompt TEXT [--tokenizer FILE.model|bytes] | --prompt-ids 1,2,3) ' +
    '--max-new-tokens N [--temperature T --top-k K --top-p P --sample-seed S] [--stop TEXT ...] [--stop-ids 1,2] [--no-cache] [--json]',
  options: {
    model: { type: 'string' },
    ...CONFIG_OPTIONS,
    seed: { type: 'string' },
    weights: { type: 'string' },
    prompt: { type: 'string' },
    'prompt-ids': { type: 'string' },
    tokenizer: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'sample-seed': { type: 'string' },
    stop: { type: 'string', multiple: true },
    'stop-ids': { type: 'string' },
    'no-cache': { type: 'boolean' },
    json: { type: 'boolean' },
    ...BACKEND_OPTION,
    ...PEFT_OPTION,
  },
  async run(values, _pos, io) {
    if ((values.prompt === undefined) === (values['prompt-ids'] === undefined)) {
      throw new YuanError(
        'usage',
        `give exactly one of --prompt TEXT or --prompt-ids 1,2,3\nusage: ${generateCommand.usage}`,
      );
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
    const registry = await loadRegistry(
      values,
      values.model === undefined && (values.preset || values.config)
        ? await loadConfig(values)
        : values.config
          ? await loadConfig(values)
          : undefined,
    );
    const model = await openModel(values, registry, io.err, true);
    const stops = (values.stop as string[] | undefined) ?? [];
    const tokenizer =
      values.prompt !== undefined || stops.length > 0
        ? await openTokenizer(registry, values.tokenizer as string | undefined, model.config)
        : undefined;
    const prompt =
      values.prompt !== undefined
        ? tokenizer!.encode(values.prompt as string)
        : idListOption(values['prompt-ids'] as string, 'prompt-ids');
    const stopIds = values['stop-ids']
      ? idListOption(values['stop-ids'] as string, 'stop-ids')
      : tokenizer
        ? [tokenizer.special.eod]
        : [];
    const ids: number[] = [];
    const started = performance.now();
    // the text is the new ids decoded in context (decode(prompt + new) − decode(prompt)), cut before the first --stop
    const completion = tokenizer ? new CompletionText(tokenizer, prompt, stops) : undefined;
    const live = !values.json && completion !== undefined && io.isTTY;
    for (const id of generateTokens(model, prompt, { ...options, stopIds })) {
      ids.push(id);
      if (!completion) continue;
      if (stopIds.includes(id) && id === tokenizer!.special.eod) break;
      const step = completion.push(id);
      if (live) process.stdout.write(step.delta);
      if (step.stopped) break;
    }
    const seconds = (performance.now() - started) / 1000;
    model.dispose();
    const tail = completion?.finish();
    const text = completion?.text;
    if (values.json)
      io.out(
        JSON.stringify(text === undefined ? { ids } : { ids, text, ...(completion!.stopped ? { stopped: true } : {}) }),
      );
    else if (live) io.out(tail!.delta);
    else io.out(text ?? ids.join(','));
    io.err(
      `${ids.length} tokens in ${seconds.toFixed(2)} s (${(ids.length / seconds).toFixed(1)} tokens/s, cache ${options.useCache ? 'on' : 'off'})`,
    );
  },
};
