import { PluginRegistry } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { evaluatorPlugins } from './registry.js';

describe('evaluator plugins', () => {
  it('register under the evaluator kind and come back typed', () => {
    const registry = new PluginRegistry();
    for (const e of evaluatorPlugins) registry.register(e);
    registry.freeze();
    expect(registry.names('evaluator')).toEqual(['agieval', 'gsm8k', 'humaneval', 'mathcloze', 'mathqa', 'perplexity', 'svamp', 'truthfulqa']);
    expect(typeof registry.get('evaluator', 'gsm8k').evaluate).toBe('function');
    expect(() => registry.get('evaluator', 'mmlu')).toThrow(/unknown evaluator plugin "mmlu"/);
  });
});
