import { PluginRegistry, registerModule } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import * as evalPackage from '../index.js';
import { getEvaluator } from '../run/run-evaluation.js';

describe('evaluator plugins', () => {
  it('register under the evaluator kind and come back typed', () => {
    const registry = registerModule(new PluginRegistry(), evalPackage, '@yuan/eval').freeze();
    expect(registry.names('evaluator')).toEqual([
      'agieval',
      'gsm8k',
      'humaneval',
      'mathcloze',
      'mathqa',
      'perplexity',
      'svamp',
      'truthfulqa',
    ]);
    expect(typeof registry.get('evaluator', 'gsm8k').evaluate).toBe('function');
    expect(() => registry.get('evaluator', 'mmlu')).toThrow(/unknown evaluator plugin "mmlu"/);
    expect(registry.names('model-adapter')).toEqual(['openai']);
  });

  it("a name is looked up in the registry given, else in this package's own", () => {
    expect(getEvaluator('gsm8k').name).toBe('gsm8k');
    const mine = new PluginRegistry().register({
      kind: 'evaluator',
      name: 'mine',
      description: 'test',
      defaults: {},
      evaluate: async () => ({ task: 'mine', metrics: {}, count: 0 }),
    });
    expect(getEvaluator('mine', mine).name).toBe('mine');
    expect(() => getEvaluator('gsm8k', mine)).toThrow('unknown evaluator plugin "gsm8k" (registered: mine)');
  });
});
