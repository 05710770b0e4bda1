import type { EvaluatorPlugin } from '@yuan/core';
import { agiEvalEvaluator } from './agieval.js';
import { gsm8kEvaluator, svampEvaluator } from './gsm8k.js';
import { humanEvalEvaluator } from './humaneval.js';
import { perplexityEvaluator } from './perplexity.js';
import { mathclozeEvaluator, mathqaEvaluator, truthfulQaEvaluator } from './yuan-tasks.js';

/** The built-in evaluators: humaneval, gsm8k, svamp, agieval, perplexity, mathqa, mathcloze, truthfulqa. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const evaluatorPlugins: EvaluatorPlugin<any>[] = [humanEvalEvaluator, gsm8kEvaluator, svampEvaluator, agiEvalEvaluator, perplexityEvaluator, mathqaEvaluator, mathclozeEvaluator, truthfulQaEvaluator];
