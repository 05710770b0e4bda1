import { countParameters } from '@yuan/core';
import { describe, expect, it } from 'vitest';
import { lfaAttention } from './lfa.js';
import { LFA_DEFAULTS } from './options.js';

const spec = {
  hiddenSize: 2048,
  numHeads: 32,
  headDim: 64,
  layerIndex: 0,
  numLayers: 24,
  ropeBase: 10000,
  rmsNormEps: 1e-6,
  initStd: 0.02,
};
const options = (o: Record<string, unknown> = {}) => lfaAttention.validate!({ ...LFA_DEFAULTS, ...o });

describe('lfa plugin', () => {
  it('has the parameters of YUAN 2.0 LFA: attention 4H² plus convs 2H², conv biases 1.5H and the RMSNorm H', () => {
    const h = spec.hiddenSize;
    const params = lfaAttention.parameters(spec, options());
    expect(countParameters(params)).toBe(4 * h * h + 2 * h * h + 1.5 * h + h);
    const byName = Object.fromEntries(params.map((p) => [p.name, p]));
    expect(byName['lf_gate.conv1.weight'].shape).toEqual([h / 2, h, 2, 1]);
    expect(byName['lf_gate.conv2.weight'].shape).toEqual([h, h / 2, 2, 1]);
    expect(byName['qk_proj.weight']).toMatchObject({ shape: [2 * h, h], parts: ['q_proj.weight', 'k_proj.weight'] });
  });

  it('sizes the ablation variants as the paper does (one conv of kernel k adds k·H² + H)', () => {
    const h = spec.hiddenSize;
    const base = 4 * h * h;
    for (const kernel of [1, 2, 3, 7]) {
      expect(countParameters(lfaAttention.parameters(spec, options({ convs: 1, kernel, norm: false })))).toBe(
        base + kernel * h * h + h,
      );
    }
  });

  it('rejects bad options naming the field', () => {
    expect(() => options({ convs: 3 })).toThrow(
      'invalid config: attention.options.convs = 3; expected an integer >= 1 <= 2',
    );
    expect(() => options({ kernel: 'big' })).toThrow(/attention.options.kernel = "big"/);
    expect(() => options({ norm: 1 })).toThrow(/attention.options.norm = 1; expected true or false/);
    expect(() => options({ gate: true })).toThrow(/unknown field attention.options.gate/);
  });
});
