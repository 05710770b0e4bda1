import type { PluginRegistry } from '@yuan/core';
import { runTraining, type RunOptions, type RunResult } from '@yuan/train';
import { initBackend } from '@yuan/tensor';
import type { CommandIO } from '../command.js';
import { Progress } from './progress.js';

/**
 * Runs the library training loop with the CLI's progress (a bar on a terminal, about 20 plain lines otherwise) after
 * selecting the tensor backend (`options.backend`, a backend plugin of `registry`, else the highest priority that loads).
 * Returns the run's result and the backend's name.
 */
export async function trainWithProgress(
  io: CommandIO,
  registry: PluginRegistry,
  options: Omit<RunOptions, 'onStep' | 'onNote'>,
): Promise<RunResult & { backend: string }> {
  const backend = await initBackend(options.backend, registry);
  let progress: Progress | undefined;
  const result = await runTraining({
    ...options,
    backend: backend.name,
    onStep(step, total, status) {
      progress ??= new Progress(io, total, Math.max(1, Math.round(total / 20)));
      progress.update(step, status);
    },
    onNote(text) {
      if (progress) progress.note(text);
      else io.err(text);
    },
  });
  return { ...result, backend: backend.name };
}
