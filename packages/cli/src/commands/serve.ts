import {
  createOpenAIServer,
  ServingEngine,
  type ChatMessage,
  type PreparedRequest,
  type ServedModel,
} from '@yuan/serve';
import path from 'node:path';
import { numberOption, requireString, type Command } from '../command.js';
import {
  BACKEND_OPTION,
  CONFIG_OPTIONS,
  loadConfig,
  loadRegistry,
  openModel,
  openTokenizer,
  PEFT_OPTION,
} from '../context.js';

/** YUAN's chat format: the turns' text joined by newlines, then `<sep>` (the model answers and ends with `<eod>`). */
function yuanChat(messages: ChatMessage[]): string {
  return `${messages.map((m) => m.content).join('\n')}<sep>`;
}

/** A local model as the OpenAI-compatible server's `ServedModel`: a continuous-batching engine, streaming token by token. */
export function servedLocal(engine: ServingEngine, modelName: string): ServedModel<PreparedRequest> {
  return {
    modelName,
    maxNewTokens: engine.model.config.model.maxPositions,
    formatChat: yuanChat,
    tokenizer: {
      encode: (text) => engine.tokenizer.encode(text),
      decode: (ids) => engine.tokenizer.decode(ids),
      vocabSize: Math.min(engine.tokenizer.vocabSize, engine.model.config.model.vocabSize),
      eosToken: engine.tokenizer.decode([engine.tokenizer.special.eod]),
      contextLength: engine.model.config.model.maxPositions,
    },
    prepare: (req, param) => engine.prepare(req, param),
    async generate(prepared, onText, signal) {
      const r = await engine.generate(prepared, onText, signal);
      return r.choices.map((c) => ({
        text: c.text,
        finishReason: c.finishReason,
        promptTokens: r.promptTokens,
        completionTokens: c.completionTokens,
        ...(c.logprobs ? { logprobs: c.logprobs } : {}),
      }));
    },
  };
}

/** `yuan serve`: an OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions with streaming, /v1/models) on a local model. */
export const serveCommand: Command = {
  path: ['serve'],
  summary: 'serve a checkpoint (or fresh preset) over an OpenAI-compatible HTTP API',
  usage:
    'yuan serve (--model DIR | --preset NAME [--seed S] [--weights fp32|bf16|int8|int4]) [--peft ADAPTER_DIR] [--tokenizer F] [--port 8000] [--host 127.0.0.1] [--name NAME] [--max-batch 8] [--backend B]',
  options: {
    model: { type: 'string' },
    ...CONFIG_OPTIONS,
    tokenizer: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    name: { type: 'string' },
    'max-batch': { type: 'string' },
    seed: { type: 'string' },
    weights: { type: 'string' },
    ...BACKEND_OPTION,
    ...PEFT_OPTION,
  },
  async run(values, _pos, io) {
    if (!values.model && !values.peft) requireString(values, 'preset', serveCommand);
    const port = numberOption(values, 'port', 8000, { int: true, min: 0 });
    const maxBatch = numberOption(values, 'max-batch', 8, { int: true, min: 1 });
    const host = (values.host as string | undefined) ?? '127.0.0.1';
    const registry = await loadRegistry(values, values.preset || values.config ? await loadConfig(values) : undefined);
    // inference: weights stay in their stored format and, on the native backend, decode batched on the native decoder
    const model = await openModel(values, registry, io.err, true);
    const tokenizer = await openTokenizer(registry, values.tokenizer as string | undefined, model.config);
    const name =
      (values.name as string | undefined) ??
      path.basename(path.resolve((values.model ?? values.preset ?? values.peft) as string));
    const server = createOpenAIServer(servedLocal(new ServingEngine(model, tokenizer, { maxBatch }), name));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    const actual = typeof address === 'object' && address ? address.port : port;
    io.out(
      `serving "${name}" on http://${host}:${actual}/v1 (completions, chat/completions, models; batches up to ${maxBatch}); Ctrl-C to stop`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => server.close(() => resolve());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    model.dispose();
    return 0;
  },
};
