import type { GenerationRequest } from '@yuan/core';
import { createOpenAIServer, type ChatMessage, type ServedCompletion, type ServedModel } from '@yuan/eval';
import { LocalModelAdapter } from '@yuan/model';
import path from 'node:path';
import { numberOption, requireString, type Command } from '../command.js';
import { BACKEND_OPTION, CONFIG_OPTIONS, loadConfig, loadRegistry, openModel, openTokenizer } from '../context.js';

/** YUAN's chat format: the turns' text joined by newlines, then `<sep>` (the model answers and ends with `<eod>`). */
function yuanChat(messages: ChatMessage[]): string {
  return `${messages.map((m) => m.content).join('\n')}<sep>`;
}

/** A local model as the OpenAI-compatible server's `ServedModel`, streaming token by token. */
function servedLocal(adapter: LocalModelAdapter, modelName: string): ServedModel {
  const run = async (req: GenerationRequest, index: number, signal: AbortSignal, onText?: (t: string) => void): Promise<ServedCompletion> => {
    const it = adapter.stream(req, index, signal);
    let text = '';
    for (;;) {
      const step = await it.next();
      if (step.done) return { text, finishReason: step.value.finishReason, promptTokens: step.value.promptTokens, completionTokens: step.value.completionTokens };
      text += step.value;
      onText?.(step.value);
    }
  };
  return {
    modelName,
    maxNewTokens: adapter.model.config.model.maxPositions,
    formatChat: yuanChat,
    async generate(req, signal) {
      const out: ServedCompletion[] = [];
      for (let i = 0; i < (req.n ?? 1); i++) out.push(await run(req, i, signal));
      return out;
    },
    generateStream: (req, onText, signal) => run(req, 0, signal, onText),
  };
}

/** `yuan serve`: an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions with streaming, /v1/models) on a local model. */
export const serveCommand: Command = {
  path: ['serve'],
  summary: 'serve a checkpoint (or fresh preset) over an OpenAI-compatible HTTP API',
  usage: 'yuan serve (--model DIR | --preset NAME) [--tokenizer F] [--port 8000] [--host 127.0.0.1] [--name NAME] [--backend B]',
  options: {
    model: { type: 'string' },
    ...CONFIG_OPTIONS,
    tokenizer: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    name: { type: 'string' },
    ...BACKEND_OPTION,
  },
  async run(values, _pos, io) {
    if (!values.model) requireString(values, 'preset', serveCommand);
    const port = numberOption(values, 'port', 8000, { int: true, min: 0 });
    const host = (values.host as string | undefined) ?? '127.0.0.1';
    const registry = await loadRegistry(values, values.preset || values.config ? loadConfig(values) : undefined);
    const model = await openModel(values, registry);
    const tokenizer = await openTokenizer(registry, values.tokenizer as string | undefined, model.config);
    const name = (values.name as string | undefined) ?? (values.model ? path.basename(path.resolve(values.model as string)) : (values.preset as string));
    const server = createOpenAIServer(servedLocal(new LocalModelAdapter(model, tokenizer, name), name));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    const actual = typeof address === 'object' && address ? address.port : port;
    io.out(`serving "${name}" on http://${host}:${actual}/v1 (completions, chat/completions, models); Ctrl-C to stop`);
    await new Promise<void>((resolve) => {
      const stop = () => server.close(() => resolve());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    model.dispose();
    return 0;
  },
};
