import { describe, expect, it } from 'vitest';
import { yuan } from './run.js';

describe('yuan presets', () => {
  it('lists the real YUAN 2.0 parameter counts from the spec', async () => {
    const r = await yuan('presets', 'list');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/yuan2-2b\s+lfa\s+24\s+2048\s+32\s+8192\s+135040\s+2,088,724,480/);
    expect(r.out).toMatch(/yuan2-51b\s+lfa\s+42\s+8192\s+64\s+32768\s+135040\s+51,842,105,344/);
    expect(r.out).toMatch(/yuan2-102b\s+lfa\s+84\s+8192\s+64\s+32768\s+135040\s+102,577,954,816/);
  });

  it('show --json prints the resolved config and count, and --set swaps the attention plugin', async () => {
    const lfa = JSON.parse((await yuan('presets', 'show', 'yuan2-2b', '--json')).out);
    expect(lfa.parameters).toBe(2088724480);
    expect(lfa.config.model).toMatchObject({ numLayers: 24, hiddenSize: 2048, rmsNormEps: 1e-6, ropeBase: 10000 });
    const mha = JSON.parse((await yuan('presets', 'show', 'yuan2-2b', '--set', 'attention.name=mha', '--json')).out);
    // LFA adds 2H² + 1.5H + H per layer
    expect(lfa.parameters - mha.parameters).toBe(24 * (2 * 2048 ** 2 + 1.5 * 2048 + 2048));
  });

  it('unknown presets and plugins are one-line errors that list what exists', async () => {
    const p = await yuan('presets', 'show', 'yuan3');
    expect(p.code).not.toBe(0);
    expect(p.err).toBe(
      'error: unknown preset plugin "yuan3" (registered: tiny-lfa, tiny-lpa, tiny-mha, tiny-pp2dp2, yuan-25m, yuan2-102b, yuan2-2b, yuan2-51b)',
    );
    const a = await yuan('presets', 'show', 'tiny-lfa', '--set', 'attention.name=flash');
    expect(a.code).not.toBe(0);
    expect(a.err).toMatch(
      /^error: unknown attention plugin "flash" \(registered: based, gqa, landmark, lfa, lpa, mha, mla\)$/,
    );
    const v = await yuan('presets', 'show', 'tiny-lfa', '--set', 'model.numLayers=two');
    expect(v.err).toBe('error: invalid config: model.numLayers = "two"; expected an integer >= 1');
  });
});
