import type { EvaluatorPlugin } from '@yuan/core';
import { agiEvalEvaluator } from './agieval.js';
import { gsm8kEvaluator, svampEvaluator } from './gsm8k.js';
import { humanEvalEvaluator } from './humaneval.js';
import { perplexityEvaluator } from './perplexity.js';

// core's own augmentation (src/evaluator.ts) does not survive its bundled .d.ts, so the kind is declared here too,
// where the bundle keeps it (the module is external): `registry.get('evaluator', name)` is then an EvaluatorPlugin.
declare module '@yuan/core' {
  interface PluginKinds {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    evaluator: EvaluatorPlugin<any>;
  }
}

/** The built-in evaluators: humaneval, gsm8k, svamp, agieval, perplexity. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const evaluatorPlugins: EvaluatorPlugin<any>[] = [humanEvalEvaluator, gsm8kEvaluator, svampEvaluator, agiEvalEvaluator, perplexityEvaluator];
