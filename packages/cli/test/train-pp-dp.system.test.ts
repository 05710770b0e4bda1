// Pipeline × data parallelism from the CLI (`yuan train --pp 2 --dp 2 --zero 0|1|2`: 4 ranks, threads or local tcp
// processes, each running one stage; Megatron's layout: data-parallel groups inside each stage): the single-process losses, gradient norms and parameters; a P × D checkpoint resumes as
// P = 1 and `yuan generate` reads it; a dead stage of one rank is a one-line error naming it, never a hang.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, maxDiff, metrics, series, weights, tinyRun, rankFreeEnv, stageFaultEnv } from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-ppdp-'));
const data = path.join(tmp, 'data');
const tiny = tinyRun(data);
const env = rankFreeEnv();

const losses = (dir: string) => series(dir, 'loss');
const norms = (dir: string) => series(dir, 'gradNorm');
const validLosses = (dir: string) => series(dir, 'validLoss');
const train = (args: string[], extraEnv: Record<string, string | undefined> = {}) => {
  const r = spawnSync(process.execPath, [bin, 'train', ...tiny, ...args], {
    encoding: 'utf8',
    env: { ...env, ...extraEnv },
    timeout: 90_000,
  });
  return { code: r.status, err: r.stderr, out: r.stdout };
};

let single: string;

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from(
      { length: 80 },
      (_, i) => `Paragraph ${i}: data parallel ranks split the micro-batches, line ${i * 7}.`,
    ).join('\n\n'),
  ); // blank lines: 80 documents, so the validation split is not empty
  const r = await yuan(
    'data',
    'prepare',
    '--input',
    path.join(tmp, 'corpus.txt'),
    '--tokenizer',
    'bytes',
    '--output',
    data,
    '--valid-fraction',
    '0.1',
  );
  expect(r.code).toBe(0);
  single = path.join(tmp, 'single');
  const s = train(['--steps', '4', '--microbatches', '4', '--out', single]);
  expect(s.code, s.err).toBe(0);
  expect(validLosses(single).length).toBeGreaterThan(0);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan train --pp 2 --dp 2', () => {
  const cases: [string, string[]][] = [
    ['threads, ZeRO 0', ['--zero', '0']],
    ['tcp processes, ZeRO 1', ['--zero', '1', '--transport', 'tcp']],
    ['threads, ZeRO 2', ['--zero', '2']],
  ];
  it.each(cases)(
    '%s gives the single-process losses, gradient norms, validation losses and parameters',
    (name, flags) => {
      const out = path.join(tmp, name.replace(/\W+/g, '-'));
      const r = train(['--steps', '4', '--microbatches', '4', '--out', out, '--pp', '2', '--dp', '2', ...flags]);
      expect(r.code, r.err).toBe(0);
      expectClose(losses(out), losses(single));
      expectClose(norms(out), norms(single));
      expectClose(validLosses(out), validLosses(single));
      expect(maxDiff(weights(out), weights(single))).toBeLessThan(1e-5);
    },
  );

  it("rank 0 logs its stage's optimizer, gradient and in-flight gradient bytes, as yuan plan predicts for stage 0", async () => {
    const out = path.join(tmp, 'threads-ZeRO-2'); // written by the ZeRO 2 case above
    const m = metrics(out).find((x) => x.gradientInFlightBytes !== undefined)!;
    expect(m).toBeDefined();
    const p = await yuan(
      'plan',
      '--preset',
      'tiny-lfa',
      '--set',
      'model.hiddenSize=32',
      '--set',
      'model.numLayers=2',
      '--set',
      'model.ffnSize=64',
      '--pp',
      '2',
      '--dp',
      '2',
      '--zero',
      '2',
      '--microbatches',
      '4',
      '--micro-batch-size',
      '2',
      '--seq',
      '16',
      '--precision',
      'fp32',
      '--json',
    );
    expect(p.code, p.err).toBe(0);
    const stage0 = JSON.parse(p.out).stages[0] as {
      parameters: number;
      optimizerBytes: number;
      gradientInFlightBytes: number;
    };
    // stage 0 holds the embedding and layer 0: the layer is its one ZeRO 2 bucket (the tied embedding stays whole)
    expect(m.gradientInFlightBytes).toBe(stage0.gradientInFlightBytes);
    expect(m.optimizerBytes).toBe(stage0.optimizerBytes);
  });

  it('a --pp 2 --dp 2 --zero 2 checkpoint holds one optimizer shard per rank, resumes as --pp 1 with the uninterrupted losses, and yuan generate reads it', async () => {
    const out = path.join(tmp, 'resume');
    const a = train(['--steps', '2', '--microbatches', '4', '--out', out, '--pp', '2', '--dp', '2', '--zero', '2']);
    expect(a.code, a.err).toBe(0);
    const files = readdirSync(path.join(out, 'checkpoint-00000002')).filter((f) => f.startsWith('optimizer'));
    expect(files.sort()).toEqual([0, 1, 2, 3].map((k) => `optimizer-0000${k}-of-00004.safetensors`));
    const b = train(['--steps', '4', '--microbatches', '4', '--out', out, '--resume', out]);
    expect(b.code, b.err).toBe(0);
    expect(b.err).toMatch(/resumed from .*checkpoint-00000002 at step 2/);
    expectClose(losses(out), losses(single));
    expect(maxDiff(weights(out), weights(single))).toBeLessThan(1e-5);
    const g = await yuan(
      'generate',
      '--model',
      out,
      '--prompt-ids',
      '1,2,3',
      '--max-new-tokens',
      '2',
      '--backend',
      'wasm',
    );
    expect(g.code, g.err).toBe(0);
  });

  it('a stage that dies on one rank is a one-line error naming the stage and the rank (threads and tcp), never a hang', () => {
    // each rank (thread or process) runs one stage: global rank r is stage ⌊r / 2⌋, data-parallel rank r mod 2
    const threads = train(
      [
        '--steps',
        '4',
        '--microbatches',
        '4',
        '--out',
        path.join(tmp, 'dead-threads'),
        '--pp',
        '2',
        '--dp',
        '2',
        '--zero',
        '1',
        '--timeout',
        '20',
      ],
      stageFaultEnv(tmp, { stage: 1, step: 2, kind: 'exit', dataRank: 1 }),
    );
    expect(threads.code).not.toBe(0);
    expect(threads.err).toMatch(
      /^error: rank 3 \(pipeline stage 1, data-parallel rank 1\) failed: worker thread exited with code 3$/m,
    );
    const tcp = train(
      [
        '--steps',
        '4',
        '--microbatches',
        '4',
        '--out',
        path.join(tmp, 'dead-tcp'),
        '--pp',
        '2',
        '--dp',
        '2',
        '--zero',
        '0',
        '--transport',
        'tcp',
        '--timeout',
        '20',
      ],
      stageFaultEnv(tmp, { stage: 0, step: 3, kind: 'exit', dataRank: 0 }),
    );
    expect(tcp.code).not.toBe(0);
    expect(tcp.err).toMatch(/^error: rank 0 \(pipeline stage 0, data-parallel rank 0\) failed: exited with code 3/m);
    // every other rank names the lost rank 0 (directly, or relayed by the rank that noticed first); a rank may still be
    // finishing the validation after step 2 when rank 0 dies in step 3, so the phase is not checked
    for (const r of [1, 2, 3])
      expect(tcp.err).toMatch(
        new RegExp(
          `^\\[rank ${r}\\] error: pipeline stage ${r >> 1} of data-parallel rank ${r & 1} \\(rank ${r}\\) failed .*: rank 0 is lost`,
          'm',
        ),
      );
  });

  it('--dp that does not divide M is a one-line usage error', () => {
    const r = train(['--steps', '1', '--microbatches', '4', '--out', path.join(tmp, 'bad'), '--pp', '2', '--dp', '3']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(
      /--dp 3 does not divide the step's 4 micro-batches \(--microbatches M, or train.gradAccumulation\): each data-parallel rank runs M\/D of them; give --microbatches 3 or a multiple of it/,
    );
  });
});
