import { moduleRegistry, type EvaluatorPlugin, type PluginBase, type PluginRegistry } from '@yuan/core';
import { openAIEndpointPlugin } from '../adapters/openai-endpoint.js';
import { agiEvalEvaluator } from './agieval.js';
import { gsm8kEvaluator, svampEvaluator } from './gsm8k.js';
import { humanEvalEvaluator } from './humaneval.js';
import { perplexityEvaluator } from './perplexity.js';
import { mathclozeEvaluator, mathqaEvaluator, truthfulQaEvaluator } from './yuan-tasks.js';

/** The built-in evaluators: humaneval, gsm8k, svamp, agieval, perplexity, mathqa, mathcloze, truthfulqa. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const evaluatorPlugins: EvaluatorPlugin<any>[] = [
  humanEvalEvaluator,
  gsm8kEvaluator,
  svampEvaluator,
  agiEvalEvaluator,
  perplexityEvaluator,
  mathqaEvaluator,
  mathclozeEvaluator,
  truthfulQaEvaluator,
];

/** This package's plugins: the evaluators and the `openai` model adapter (its `plugins` export). */
export function evalPlugins(): PluginBase<string, unknown>[] {
  return [...evaluatorPlugins, openAIEndpointPlugin] as PluginBase<string, unknown>[];
}

let own: PluginRegistry | undefined;

/** A frozen registry of this package's plugins: where an evaluator name is looked up when the caller gives no registry. */
export function evalRegistry(): PluginRegistry {
  return (own ??= moduleRegistry({ plugins: evalPlugins() }, '@yuan/eval'));
}
