import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, yuan, yuanProcess } from './run.js';

describe('yuan plan', () => {
  it('prints the per-stage table, marks the binding stage and says whether it fits', async () => {
    const r = await yuan(
      'plan',
      '--preset',
      'yuan2-102b',
      '--pp',
      '32',
      '--dp',
      '3',
      '--microbatches',
      '1152',
      '--micro-batch-size',
      '1',
      '--seq',
      '4096',
      '--partition',
      '2x10,3x20,2x2',
      '--precision',
      'bf16',
      '--zero',
      '1',
      '--memory',
      '80',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/partition 2x10,3x20,2x2: 2,2,2,2,2,2,2,2,2,2,3,3/);
    expect(r.out.split('\n').filter((l) => l.endsWith('<- binds'))).toHaveLength(1);
    expect(r.out).toMatch(/fits in 80\.00 GiB|does NOT fit in 80\.00 GiB/);
    expect(r.out).toMatch(/recompute full: each layer's input kept per in-flight micro-batch/);
    expect(r.out).toMatch(/102,577,954,816 parameters/);
  });

  it('--preset yuan2-102b carries the released layout: the same table as its flags, with no layout flag', async () => {
    const bare = await yuan('plan', '--preset', 'yuan2-102b');
    expect(bare.code, bare.err).toBe(0);
    expect(bare.out).toMatch(
      /^pipeline: P = 32, D = 3, M = 1152 \(384 per pipeline\), B = 1, S = 4096, schedule 1f1b, recompute full, fp32, ZeRO-1$/m,
    );
    expect(bare.out).toMatch(/^partition 2x10,3x20,2x2: (2,){10}(3,){20}2,2$/m);
    const flags = await yuan(
      'plan',
      '--preset',
      'yuan2-102b',
      '--pp',
      '32',
      '--dp',
      '3',
      '--zero',
      '1',
      '--microbatches',
      '1152',
      '--partition',
      '2x10,3x20,2x2',
      '--schedule',
      '1f1b',
      '--recompute',
      'full',
    );
    expect(bare.out).toBe(flags.out);
    // flags still win over the preset's layout; 51B carries its PP 16 block split
    expect(
      (await yuan('plan', '--preset', 'yuan2-102b', '--pp', '4', '--partition', 'uniform', '--dp', '1', '--zero', '0'))
        .out,
    ).toMatch(/P = 4, D = 1, M = 1152 .*ZeRO-0/);
    expect((await yuan('plan', '--preset', 'yuan2-51b')).out).toMatch(
      /P = 16, D = 1, M = 1152[^]*^partition 2x5,3x10,2: (2,){5}(3,){10}2$/m,
    );
  });

  it('--json gives stages with layers, parameters and peakBytes; shape flags work without a preset', async () => {
    const r = await yuan(
      'plan',
      '--layers',
      '8',
      '--hidden',
      '256',
      '--ffn',
      '1024',
      '--heads',
      '4',
      '--vocab',
      '1000',
      '--pp',
      '4',
      '--microbatches',
      '8',
      '--seq',
      '64',
      '--partition',
      'memory',
      '--json',
    );
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.out);
    expect(plan.stages).toHaveLength(4);
    expect(plan.stages.reduce((n: number, s: { layers: number }) => n + s.layers, 0)).toBe(8);
    for (const s of plan.stages)
      expect(s).toMatchObject({
        layers: expect.any(Number),
        parameters: expect.any(Number),
        peakBytes: expect.any(Number),
      });
    expect(plan.bubbleFraction).toBeCloseTo(3 / 11, 12);
  });

  it('--schedule auto on yuan2-102b prints every schedule and the choice; --memory rules out what does not fit', async () => {
    const r = await yuan('plan', '--preset', 'yuan2-102b', '--schedule', 'auto', '--memory', '80');
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe(
      'schedules (simulated with F = 1, I = 2, W = 1 per stage; memory cap 80.00 GiB; overlapped: steps back to back under train.postValidate, bubble and period):',
    );
    expect(lines[1].split(/\s+/)).toEqual([
      'schedule',
      'bubble',
      'step',
      'overlapped',
      'period',
      'peak',
      'GiB',
      'memory',
    ]);
    for (const name of ['1f1b', 'gpipe', 'interleaved-1f1b', 'zb-h1', 'zb-h2', 'zb-v', 'zb-v-auto'])
      expect(lines.some((l) => l.startsWith(`${name} `))).toBe(true);
    expect(lines.find((l) => l.startsWith('gpipe '))).toMatch(/does not fit$/);
    expect(lines.find((l) => l.startsWith('zb-v '))).toMatch(/<- chosen\s+fits$/);
    expect(r.out).toContain('choice: zb-v (the shortest simulated step that fits)');
    expect(r.out).toContain('schedule zb-v, recompute full');
    // with post-validation the choice is by the period of steps run back to back
    const post = await yuan(
      'plan',
      ...['--preset', 'tiny-lfa', '--pp', '2', '--microbatches', '4', '--schedule', 'auto'],
      ...['--pass-times', '1,1,1', '--set', 'train.postValidate=true'],
    );
    expect(post.code, post.err).toBe(0);
    expect(post.out).toContain('(the shortest simulated period of overlapped steps (train.postValidate) that fits)');
    const j = await yuan('plan', '--preset', 'yuan2-102b', '--schedule', 'auto', '--pass-times', '1,1,1', '--json');
    const parsed = JSON.parse(j.out);
    expect(parsed.schedules).toHaveLength(7);
    expect(parsed.plan.schedule).toBe(parsed.choice);
    const zbv = parsed.schedules.find((x: { schedule: string }) => x.schedule === 'zb-v');
    expect(zbv.overlappedPeriod).toBeLessThanOrEqual(zbv.makespan);
    const bad = await yuan('plan', '--preset', 'tiny-lfa', '--schedule', 'auto', '--pass-times', '1,2');
    expect(bad.err.trim()).toBe('error: --pass-times "1,2" is not three numbers > 0 (F,I,W)');
  });

  it('M < P warns but works', async () => {
    const r = await yuan('plan', '--preset', 'tiny-lfa', '--pp', '4', '--microbatches', '2');
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      'warning: M = 2 micro-batches < P = 4 stages: the pipeline never fills (bubble 60.0% of the step)',
    );
  });

  it('bad input is a one-line error', async () => {
    const cases: [string[], RegExp][] = [
      [['--pp', '3', '--partition', '1,1,1'], /^error: partition blocks 1,1,1 sum to 3 layers; the model has 4$/],
      [['--pp', '5'], /^error: more pipeline stages \(5\) than layers \(4\): every stage needs at least one layer$/],
      [['--pp', '2', '--microbatches', '0'], /^error: --microbatches 0: need at least 1 micro-batch per step$/],
      [
        ['--pp', '2', '--partition', 'balanced'],
        /^error: unknown partition "balanced" \(registered: memory, parameters, uniform, v-shape; or give blocks such as 2,2,3,3\)$/,
      ],
      [
        ['--pp', '2', '--schedule', 'interleaved'],
        /^error: unknown schedule "interleaved" \(registered: 1f1b, gpipe, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto\)$/,
      ],
      [
        ['--pp', '2', '--recompute', 'block'],
        /^error: recompute "block" \(Megatron's recompute of the first N layers of a stage\) is not offered: use none, selective, full or stage$/,
      ],
    ];
    for (const [args, want] of cases) {
      const r = await yuan('plan', '--preset', 'tiny-lfa', ...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.err, args.join(' ')).toMatch(want);
    }
  });

  it('--time prints both methods with each term and share', async () => {
    const r = await yuan(
      'plan',
      '--time',
      '--preset',
      'yuan2-102b',
      '--chips',
      '96',
      '--pp',
      '32',
      '--microbatches',
      '1152',
      '--seq',
      '4096',
      '--p2p-bw',
      '100',
      '--json',
    );
    expect(r.code).toBe(0);
    const t = JSON.parse(r.out);
    expect(t.method1.total).toBeGreaterThan(2 * t.yuan.total);
    expect(t.yuan.terms.map((x: { name: string }) => x.name)).toEqual(['T0', 'T1', 'T2', 'T3', 'T4']);
    const text = await yuan(
      'plan',
      '--time',
      '--preset',
      'yuan2-102b',
      '--chips',
      '96',
      '--pp',
      '32',
      '--microbatches',
      '1152',
      '--seq',
      '4096',
    );
    expect(text.out).toMatch(/T3 tensor-parallel all-reduce/);
  });

  it('is listed in the help', async () => {
    expect((await yuan('--help')).out).toMatch(/^ {2}plan\s+plan a pipeline/m);
  });

  it('yuan --version prints the built package version (what ranks compare at start-up)', () => {
    const { version } = JSON.parse(readFileSync(path.join(repoRoot, 'packages/cli/package.json'), 'utf8'));
    const r = yuanProcess('--version');
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(`yuan ${version}`);
  });
});
