import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-train-'));
const data = path.join(tmp, 'data');
const tiny = [
  '--preset',
  'tiny-lfa',
  '--set',
  'model.hiddenSize=32',
  '--set',
  'model.numLayers=2',
  '--set',
  'model.ffnSize=64',
  '--set',
  'train.seqLength=16',
  '--set',
  'train.microBatchSize=2',
  '--set',
  'train.warmupSteps=3',
];

type Metric = { step: number; loss?: number; lr?: number; gradNorm?: number; validLoss?: number };
const readMetrics = (file: string): Metric[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

/** Runs the built CLI; `killWhen` is polled on every change in `watchDir` and SIGKILLs the child when it returns true. */
function child(
  args: string[],
  watchDir?: string,
  killWhen?: (names: string[]) => boolean,
): Promise<{ code: number | null; signal: string | null; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    let watcher: ReturnType<typeof watch> | undefined;
    if (watchDir && killWhen) {
      const check = () => {
        if (existsSync(watchDir) && killWhen(readdirSync(watchDir))) p.kill('SIGKILL');
      };
      const poll = setInterval(() => {
        if (!watcher && existsSync(watchDir)) watcher = watch(watchDir, check);
        check();
      }, 2);
      p.on('exit', () => clearInterval(poll));
    }
    p.on('exit', (code, signal) => {
      watcher?.close();
      resolve({ code, signal, err });
    });
  });
}

beforeAll(async () => {
  if (!existsSync(bin)) throw new Error(`build the CLI first: cd packages/cli && npx tsup (${bin} is missing)`);
  const text = Array.from(
    { length: 60 },
    (_, i) => `Paragraph ${i}: a small corpus for a small model, line ${i * 13}.\nIt has two lines.\n`,
  ).join('\n');
  writeFileSync(path.join(tmp, 'corpus.txt'), text);
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
  expect(r.out).toMatch(/packed 60 documents .* train 54 documents \/ \d+ tokens, valid 6 documents/);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('yuan train: kill and resume', () => {
  it('after SIGKILL (here while a checkpoint is being written) --resume reproduces the uninterrupted losses', async () => {
    // wasm: single-threaded, bit-reproducible (a multi-threaded BLAS backend may reorder sums between processes)
    const common = [
      'train',
      ...tiny,
      '--set',
      'train.checkpointEvery=4',
      '--set',
      'train.validEvery=4',
      '--data',
      data,
      '--steps',
      '16',
      '--seed',
      '5',
      '--backend',
      'wasm',
    ];
    const fullOut = path.join(tmp, 'full');
    const full = await child([...common, '--out', fullOut]);
    expect([full.code, full.err.split('\n').filter((l) => l.startsWith('error'))]).toEqual([0, []]);
    const svg = readFileSync(path.join(fullOut, 'loss.svg'), 'utf8');
    expect(svg).toMatch(/^<svg [^>]*>/);
    expect(svg).toContain('train (smoothed)</text>');
    expect(svg.match(/<circle /g)?.length).toBeGreaterThanOrEqual(4 + 1); // 4 valid points + legend marker

    const out = path.join(tmp, 'killed');
    // kill as soon as the second checkpoint starts being written (its staging folder appears)
    const killed = await child([...common, '--out', out], out, (names) =>
      names.some((n) => n.startsWith('.checkpoint-00000008.partial')),
    );
    expect(killed.signal).toBe('SIGKILL');
    const complete = readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n));
    expect(complete).toContain('checkpoint-00000004');

    const resumed = await child([...common, '--out', out, '--resume', out]);
    expect(resumed.code).toBe(0);
    const from = Number(/resumed from .*checkpoint-(\d+) at step (\d+)/.exec(resumed.err)?.[2]);
    expect(from === 4 || from === 8).toBe(true);
    const a = readMetrics(path.join(fullOut, 'metrics.jsonl')).filter((m) => m.loss !== undefined);
    const b = readMetrics(path.join(out, 'metrics.jsonl')).filter((m) => m.loss !== undefined);
    expect(b.map((m) => m.step)).toEqual(a.map((m) => m.step));
    for (const [i, m] of a.entries()) {
      expect(Math.abs(b[i].loss! - m.loss!)).toBeLessThan(1e-5);
      expect(Math.abs(b[i].gradNorm! - m.gradNorm!)).toBeLessThan(1e-5);
      expect(b[i].lr).toBe(m.lr);
    }
    const va = readMetrics(path.join(fullOut, 'metrics.jsonl')).filter((m) => m.validLoss !== undefined);
    const vb = readMetrics(path.join(out, 'metrics.jsonl')).filter((m) => m.validLoss !== undefined);
    expect(vb.map((m) => m.step)).toEqual(va.map((m) => m.step));
    expect(readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n))).toEqual([
      'checkpoint-00000012',
      'checkpoint-00000016',
    ]);
    expect(readdirSync(out).filter((n) => n.includes('partial'))).toEqual([]); // the killed writer's staging folder is gone
    // a run folder works as --model: it means its newest complete checkpoint
    const fromRun = await yuan(
      'generate',
      '--model',
      fullOut,
      '--prompt-ids',
      '1,2',
      '--max-new-tokens',
      '3',
      '--json',
    );
    const fromCkpt = await yuan(
      'generate',
      '--model',
      path.join(fullOut, 'checkpoint-00000016'),
      '--prompt-ids',
      '1,2',
      '--max-new-tokens',
      '3',
      '--json',
    );
    expect(fromRun.code).toBe(0);
    expect(JSON.parse(fromRun.out)).toEqual(JSON.parse(fromCkpt.out));
  });
});

describe('yuan data prepare', () => {
  it('packs JSONL documents and prompt/answer pairs', async () => {
    const file = path.join(tmp, 'mixed.jsonl');
    writeFileSync(
      file,
      `${JSON.stringify({ text: 'plain text' })}\n\n${JSON.stringify({ prompt: 'Q: 2+2?', answer: '4' })}\n`,
    );
    const r = await yuan(
      'data',
      'prepare',
      '--input',
      file,
      '--tokenizer',
      'bytes',
      '--output',
      path.join(tmp, 'mixed'),
      '--valid-fraction',
      '0',
    );
    expect(r.out).toMatch(
      /^packed 2 documents \(1 prompt\/answer pairs\), 21 tokens into .*: train 2 documents \/ 21 tokens, valid 0 documents \/ 0 tokens$/,
    );
    const mask = readFileSync(path.join(tmp, 'mixed', 'train.mask'));
    expect([...mask.subarray(11)]).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1, 1]); // 'Q: 2+2?' masked; <sep>, '4', <eod> count
  });
});

describe('yuan experiment ablation', () => {
  it('trains each variant on the same data and prints params, time per step and test loss relative to the first', async () => {
    const out = path.join(tmp, 'ablation');
    const r = await yuan(
      'experiment',
      'ablation',
      ...tiny,
      '--data',
      data,
      '--test',
      data,
      '--test-batches',
      '2',
      '--steps',
      '3',
      '--variants',
      'mha,lfa-k3,lpa-r4',
      '--out',
      out,
      '--json',
    );
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as { variant: string; attention: string; parameters: number; testLoss: number }[];
    expect(rows.map((x) => x.variant)).toEqual(['mha', 'lfa-k3', 'lpa-r4']);
    // 2 layers, hidden 32: mha 4·32² per layer; lfa-k3 adds a [32,32,3,1] conv + bias; lpa-r4 has 8·32·4
    expect(rows[1].parameters - rows[0].parameters).toBe(2 * (32 * 32 * 3 + 32));
    expect(rows[0].parameters - rows[2].parameters).toBe(2 * (4 * 32 * 32 - 8 * 32 * 4));
    expect(rows.every((x) => Number.isFinite(x.testLoss) && x.testLoss > 0)).toBe(true);
    expect(readFileSync(path.join(out, 'ablation.md'), 'utf8')).toMatch(
      /^\| variant \| attention \| params \|.*\n.*\n\| mha \| mha \| [\d,]+ \| — \|/,
    );
    const bad = await yuan('experiment', 'ablation', '--data', data, '--steps', '1', '--variants', 'mha,flash');
    expect(bad.err).toMatch(
      /^error: unknown variant "flash" \(registered attention plugins: based, gqa, landmark, lfa, lpa, mha, mla; named variants NAME-SUFFIX of based, gqa, landmark, lfa, lpa, mla; options as NAME:key=value/,
    );
  });
});

describe('yuan train: bad input', () => {
  it('names empty or unreadable data, a sequence longer than the data, a bad lr and a foreign resume folder', async () => {
    writeFileSync(path.join(tmp, 'empty.txt'), '\n\n  \n');
    const empty = await yuan(
      'data',
      'prepare',
      '--input',
      path.join(tmp, 'empty.txt'),
      '--tokenizer',
      'bytes',
      '--output',
      path.join(tmp, 'e'),
    );
    expect([empty.code, empty.err]).toEqual([1, 'error: the input has no documents with text: nothing to train on']);
    const missing = await yuan(
      'data',
      'prepare',
      '--input',
      path.join(tmp, 'nope.txt'),
      '--tokenizer',
      'bytes',
      '--output',
      path.join(tmp, 'e'),
    );
    expect(missing.err).toMatch(/^error: cannot read input .*nope\.txt \(ENOENT\)$/);
    writeFileSync(path.join(tmp, 'bad.jsonl'), '{"text": "ok"}\n{"txt": 1}\n');
    const bad = await yuan(
      'data',
      'prepare',
      '--input',
      path.join(tmp, 'bad.jsonl'),
      '--tokenizer',
      'bytes',
      '--output',
      path.join(tmp, 'e'),
    );
    expect(bad.err).toMatch(/bad\.jsonl:2: expected a string field "text" or string fields "prompt" and "answer"/);
    expect(existsSync(path.join(tmp, 'e'))).toBe(false);

    const noData = await yuan(
      'train',
      ...tiny,
      '--data',
      path.join(tmp, 'none'),
      '--steps',
      '2',
      '--out',
      path.join(tmp, 'o'),
    );
    expect(noData.err).toMatch(/^error: data folder not found: .*none$/);
    const long = await yuan(
      'train',
      ...tiny,
      '--set',
      'train.seqLength=64',
      '--set',
      'model.maxPositions=8192',
      '--set',
      'train.seqLength=5000',
      '--data',
      data,
      '--steps',
      '2',
      '--out',
      path.join(tmp, 'o'),
    );
    expect(long.err).toMatch(
      /^error: sequence length 5000 is larger than the data: the train split has \d+ tokens \(need at least 5001\)$/,
    );
    const lr = await yuan(
      'train',
      ...tiny,
      '--set',
      'train.lr=fast',
      '--data',
      data,
      '--steps',
      '2',
      '--out',
      path.join(tmp, 'o'),
    );
    expect(lr.err).toBe('error: invalid config: train.lr = "fast"; expected a number > 0');
    const shape = await yuan(
      'train',
      ...tiny,
      '--set',
      'model.hiddenSize=64',
      '--data',
      data,
      '--steps',
      '20',
      '--out',
      path.join(tmp, 'o'),
      '--resume',
      path.join(tmp, 'full'),
    );
    expect(shape.code).toBe(1);
    expect(shape.err).toMatch(
      /^error: .*checkpoint-00000016 holds another model \(vocab 264, hidden 32, .*\) than this run's config \(vocab 264, hidden 64, /,
    );
    for (const r of [empty, missing, bad, noData, long, lr, shape]) expect(r.err.split('\n')).toHaveLength(1);
  });

  it('a fresh run into a folder holding another run sets that run aside instead of mixing or losing checkpoints', async () => {
    const out = path.join(tmp, 'reuse');
    expect((await yuan('train', ...tiny, '--data', data, '--steps', '3', '--out', out)).code).toBe(0);
    const again = await yuan('train', ...tiny, '--data', data, '--steps', '2', '--out', out);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/held an earlier run: moved its checkpoints and metrics to .*previous-\d{8}T\d{6}/);
    const previous = readdirSync(out).find((d) => d.startsWith('previous-'))!;
    expect(readdirSync(path.join(out, previous)).sort()).toEqual(['checkpoint-00000003', 'loss.svg', 'metrics.jsonl']);
    expect(readdirSync(out).filter((d) => d.startsWith('checkpoint-'))).toEqual(['checkpoint-00000002']);
  });

  it('flags of a parallel layout that was not asked for are one-line errors', async () => {
    const o = ['--data', data, '--steps', '1', '--out', path.join(tmp, 'flags')];
    expect((await yuan('train', ...tiny, ...o, '--partition', '9,9')).err).toBe(
      'error: --partition applies to a pipeline: add --pp P (P > 1)',
    );
    expect((await yuan('train', ...tiny, ...o, '--zero', '1')).err).toMatch(
      /^error: --zero applies to data parallelism: add --dp D/,
    );
    expect((await yuan('train', ...tiny, ...o, '--transport', 'tcp')).err).toMatch(
      /^error: --transport applies to parallel runs: add --dp D or --pp P/,
    );
    expect(existsSync(path.join(tmp, 'flags'))).toBe(false);
  });

  it('stops on a non-finite loss or gradient naming the step and keeps the last good checkpoint', async () => {
    const out = path.join(tmp, 'nan');
    const r = await yuan(
      'train',
      ...tiny,
      '--set',
      'train.lr=1e30',
      '--set',
      'train.warmupSteps=0',
      '--set',
      'train.checkpointEvery=1',
      '--data',
      data,
      '--steps',
      '6',
      '--out',
      out,
    );
    expect(r.code).toBe(1);
    const line = r.err.split('\n').pop()!;
    expect(line).toMatch(
      /^error: (loss|gradient norm) is (NaN|Infinity).* at step (\d+): training stopped; parameters were not updated; the last good checkpoint is .*checkpoint-(\d+)$/,
    );
    const [, , , step, ckpt] = /(loss|gradient norm) is (NaN|Infinity).* at step (\d+).*checkpoint-(\d+)$/.exec(line)!;
    expect(Number(ckpt)).toBe(Number(step) - 1);
    const state = JSON.parse(readFileSync(path.join(out, `checkpoint-${ckpt}`, 'trainer.json'), 'utf8'));
    expect(state.step).toBe(Number(ckpt));
  });
});
