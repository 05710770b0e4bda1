import type { CommandEntry } from '../command.js';

/**
 * Every `yuan` subcommand as `yuan --help` lists it. A command's module (and with it TensorFlow.js and the model) is
 * imported only when that command runs or shows its own --help, so that `yuan --help` starts as fast as Node. A package's
 * command is one file in this folder and one entry here; its path and summary here must equal the module's (a test
 * checks).
 */
export const COMMANDS: CommandEntry[] = [
  {
    path: ['env'],
    summary: 'show the tensor backends by priority, the one chosen and why, versions and threads',
    load: async () => (await import('./env.js')).envCommand,
  },
  {
    path: ['presets', 'list'],
    summary: 'list the presets (built in and from --plugin packages) with their shapes and parameter counts',
    load: async () => (await import('./presets.js')).presetsList,
  },
  {
    path: ['presets', 'show'],
    summary: 'show a preset resolved (with --config/--set applied) and its parameter count',
    load: async () => (await import('./presets.js')).presetsShow,
  },
  {
    path: ['forward'],
    summary: 'run a checkpoint on {"input_ids": [[...]]} and write {"logits", "loss"}',
    load: async () => (await import('./forward.js')).forwardCommand,
  },
  {
    path: ['generate'],
    summary: 'generate text or ids from a checkpoint (--model) or a fresh preset (--preset)',
    load: async () => (await import('./generate.js')).generateCommand,
  },
  {
    path: ['tokenize'],
    summary: 'encode text to ids and pieces (or --decode ids) with a SentencePiece .model or the byte tokenizer',
    load: async () => (await import('./tokenize.js')).tokenizeCommand,
  },
  {
    path: ['data', 'prepare'],
    summary:
      'tokenize text, .jsonl (text or prompt/answer) or YUAN-format lines into a packed folder with a train/valid split and Megatron .bin/.idx',
    load: async () => (await import('./data.js')).dataPrepare,
  },
  {
    path: ['train'],
    summary:
      'train a model on a packed data folder (checkpoints, metrics, loss.svg; --resume continues a run; --pp P pipeline, --dp D data parallelism with ZeRO)',
    load: async () => (await import('./train.js')).trainCommand,
  },
  {
    path: ['experiment', 'ablation'],
    summary:
      'train attention variants (mha, lfa, lfa-kN, lpa, ...) with equal seed, tokens and schedule; print params, time/step, test loss',
    load: async () => (await import('./experiment.js')).experimentAblation,
  },
  {
    path: ['filter'],
    summary: 'filter and deduplicate JSONL pretraining data (Chinese, English, code) with a report of what was dropped',
    load: async () => (await import('./filter.js')).filterCommand,
  },
  {
    path: ['filter', 'plan'],
    summary:
      'plan a corpus-scale filter + cross-shard dedup run (stages as SLURM array jobs or Kubernetes indexed Jobs)',
    load: async () => (await import('./filter.js')).filterPlanCommand,
  },
  {
    path: ['filter', 'stage'],
    summary:
      'run task(s) of one stage of a `yuan filter plan` (resumable; --task I/N, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)',
    load: async () => (await import('./filter.js')).filterStageCommand,
  },
  {
    path: ['eval'],
    summary:
      'evaluate a model (humaneval, gsm8k, svamp, agieval, mathqa, mathcloze, truthfulqa, perplexity): local --model, --endpoint, or --samples',
    load: async () => (await import('./eval.js')).evalCommand,
  },
  {
    path: ['quantize'],
    summary:
      "quantize a checkpoint's linears to 8 or 4 bits (rtn, gptq with calibration data) in the Hugging Face GPTQ layout",
    load: async () => (await import('./quantize.js')).quantizeCommand,
  },
  {
    path: ['serve'],
    summary: 'serve a checkpoint (or fresh preset) over an OpenAI-compatible HTTP API',
    load: async () => (await import('./serve.js')).serveCommand,
  },
  {
    path: ['plugins', 'list'],
    summary:
      "list the registered plugins (built-in and loaded with --plugin or a config's plugins:) with kind, source and options",
    load: async () => (await import('./plugins.js')).pluginsList,
  },
  {
    path: ['launch'],
    summary:
      'start N local ranks of a command with RANK/WORLD_SIZE/MASTER_* set, or print a SLURM or Kubernetes job for it',
    load: async () => (await import('./launch.js')).launchCommand,
  },
  {
    path: ['adapter', 'merge'],
    summary:
      "merge a PEFT adapter (LoRA) into its base checkpoint's weights and write a plain checkpoint (no adapter needed to run it)",
    load: async () => (await import('./adapter.js')).adapterMerge,
  },
  {
    path: ['plan'],
    summary: "plan a pipeline: layers, parameters, memory per stage, bubble; --time: the paper's step-time model",
    load: async () => (await import('./plan.js')).planCommand,
  },
];
