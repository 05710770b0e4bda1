import { describe, expect, it } from 'vitest';
import { lfaAttention } from '@yuan/attention-lfa';
import { planTime, type TimeModelInput } from './index.js';

// appendix D: Yuan 2.0-102B (spec §3: 102,577,954,816 parameters, F = 4H), A = 384 at DP 3 (global batch 1152, B = 1),
// PP 32, 2 × 195 Gb/s network
const appD = (chips: number, p2p: number): TimeModelInput => ({
  layers: 84,
  hidden: 8192,
  heads: 64,
  ffn: 32768,
  seqLength: 4096,
  parameters: 102_577_954_816,
  attention: { plugin: lfaAttention },
  microBatchSize: 1,
  microbatches: 1152,
  chips,
  pipeline: 32,
  p2pBandwidth: p2p * 1e9,
});

describe('planTime', () => {
  it('reproduces Table 6: from 400 to 100 GB/s Method 1 slows by about 85%, YUAN by under 1%', () => {
    const at = (chips: number, p2p: number) => planTime(appD(chips, p2p));
    const m1 = at(96, 100).method1.total / at(96, 400).method1.total - 1;
    const yuan = at(96, 100).yuan.total / at(96, 400).yuan.total - 1;
    expect(m1).toBeGreaterThan(0.8);
    expect(m1).toBeLessThan(0.9);
    expect(yuan).toBeGreaterThan(0);
    expect(yuan).toBeLessThan(0.01);
    const table6: [number, number, number, number][] = [
      [96, 100, 584.28, 239.06],
      [96, 200, 405.45, 238.4],
      [96, 400, 316.32, 238.1],
      [256, 100, 224.1, 101.22],
      [256, 200, 156.64, 100.92],
      [256, 400, 123.21, 100.81],
    ];
    for (const [chips, bw, paperM1, paperYuan] of table6) {
      const t = at(chips, bw);
      expect(Math.abs(t.method1.total / paperM1 - 1)).toBeLessThan(0.05);
      expect(Math.abs(t.yuan.total / paperYuan - 1)).toBeLessThan(0.05);
    }
  });

  it('gives each term and its share; YUAN has no tensor-parallel term', () => {
    const t = planTime(appD(96, 400));
    expect(t.method1.terms.map((x) => x.name)).toEqual(['T0', 'T1', 'T2', 'T3', 'T4']);
    expect(t.method1.terms.reduce((a, x) => a + x.share, 0)).toBeCloseTo(1, 12);
    expect(t.method1.tensorParallel).toBe(8);
    expect(t.method1.pipeline).toBe(4);
    expect(t.yuan.dataParallel).toBe(3);
    expect(t.yuan.accumulation).toBe(384);
    expect(t.yuan.terms.find((x) => x.name === 'T3')!.what).toMatch(/optimizer-parallel/);
    // T1 = T0 (P − 1)/A
    expect(t.yuan.terms[1].seconds).toBeCloseTo((t.yuan.terms[0].seconds * 31) / 384, 9);
  });

  it("counts the attention plugin's own FLOPs (projections twice LFA's here); a plugin without flops() is a one-line error", () => {
    const lfa = lfaAttention;
    const heavy = {
      ...lfa,
      name: 'heavy',
      flops: (shape: never, o: never) => ({
        ...lfa.flops!(shape, o),
        projections: 2 * lfa.flops!(shape, o).projections,
      }),
    };
    const base = planTime(appD(96, 400));
    const t = planTime({ ...appD(96, 400), attention: { plugin: heavy } });
    // per token: 8·H² more projections; T0 ∝ dense + core = (32 → 40)·H² + 4·S·H with S/H = 1/2; T3 (TP) ∝ dense: 64 → 80
    expect(t.yuan.terms[0].seconds / base.yuan.terms[0].seconds).toBeCloseTo(42 / 34, 12);
    expect(t.method1.terms[3].seconds / base.method1.terms[3].seconds).toBeCloseTo(80 / 64, 12);
    expect(t.notes[0]).toMatch(
      /^compute: 4 passes of a layer's forward per token 40·H² \(attention "heavy" projections 16·H² \+ SwiGLU 24·H²\) \+ core 4·S·H/,
    );
    const { flops: _, ...silent } = lfa;
    expect(() => planTime({ ...appD(96, 400), attention: { plugin: { ...silent, name: 'silent' } } })).toThrow(
      /^attention plugin "silent" does not describe its FLOPs \(no flops\(\) descriptor\), so the time model cannot count its layers$/,
    );
  });

  it('one-line errors for shapes that do not divide', () => {
    expect(() => planTime({ ...appD(96, 400), chips: 100 })).toThrow(/^--chips 100 is not divisible by --pp 32$/);
    expect(() => planTime({ ...appD(96, 400), tensorParallel: 5 })).toThrow(/^--pp 32 is not divisible by --tp 5/);
    expect(() => planTime({ ...appD(96, 400), microbatches: 1000 })).toThrow(
      /not divisible by the data-parallel size 3/,
    );
  });
});
