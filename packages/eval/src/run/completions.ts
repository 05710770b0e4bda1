import { YuanError, type EvalContext, type GenerationRequest } from '@yuan/core';
import { mapLimit } from './pool.js';

/** A task with the completions to score for it. */
export interface TaskCompletions<T> {
  task: T;
  completions: string[];
}

/**
 * The completions to score: with `ctx.completions` (supplied samples) the tasks that have some, in task order (an id
 * that names no task is an error); otherwise `settings.n` completions per task generated through `ctx.model` with
 * `settings.workers` requests in flight. `--limit` applies to the task list before either.
 */
export async function collectCompletions<T extends { id: string }>(
  ctx: EvalContext,
  allTasks: T[],
  request: (task: T) => Omit<GenerationRequest, 'n' | 'temperature' | 'topP' | 'seed'>,
): Promise<TaskCompletions<T>[]> {
  const { settings } = ctx;
  const tasks = settings.limit === undefined ? allTasks : allTasks.slice(0, settings.limit);
  if (ctx.completions) {
    const known = new Set(allTasks.map((t) => t.id));
    for (const id of ctx.completions.keys()) {
      if (!known.has(id))
        throw new YuanError('input', `samples name task "${id}", which this evaluation does not have`);
    }
    const chosen = tasks.filter((t) => (ctx.completions!.get(t.id)?.length ?? 0) > 0);
    if (chosen.length === 0)
      throw new YuanError('input', 'no supplied sample matches a task of this evaluation (check the ids and --limit)');
    return chosen.map((task) => ({ task, completions: ctx.completions!.get(task.id)! }));
  }
  const model = ctx.model;
  if (!model) throw new YuanError('usage', 'an evaluation needs a model (--model or --endpoint) or --samples');
  let done = 0;
  return mapLimit(tasks, settings.workers, async (task) => {
    const req: GenerationRequest = {
      ...request(task),
      ...(settings.maxNewTokens !== undefined ? { maxNewTokens: settings.maxNewTokens } : {}),
      n: settings.n,
      temperature: settings.temperature,
      ...(settings.topP !== undefined ? { topP: settings.topP } : {}),
      ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
    };
    const completions = await model.generate(req);
    if (completions.length !== settings.n) {
      throw new YuanError(
        'model',
        `${model.name} returned ${completions.length} completions for task ${task.id}; ${settings.n} were asked for`,
      );
    }
    ctx.progress?.(++done, tasks.length);
    return { task, completions };
  });
}
