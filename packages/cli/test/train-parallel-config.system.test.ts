// The parallel layout is configuration: `yuan train --preset tiny-pp2dp2` (its config carries parallel: {pp: 2, dp: 2,
// zero: 1, microbatches: 4}) gives the single-process losses, and the same layout from a YAML file, from --set and
// from flags gives the same run; a bad layout is a one-line error naming the field.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, series, tinyRun, rankFreeEnv } from './parallel-run.js';
import { repoRoot, yuan } from './run.js';

const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-layout-'));
const data = path.join(tmp, 'data');
const shape = tinyRun(data).slice(2); // the tiny shape, data and seed without the preset
const env = rankFreeEnv();
const layoutYaml = path.join(tmp, 'layout.yaml');

const train = (args: string[]) => {
  const r = spawnSync(process.execPath, [bin, 'train', ...args, '--steps', '4'], {
    encoding: 'utf8',
    env,
    timeout: 120_000,
  });
  return { code: r.status, err: r.stderr };
};
/** The resolved config a run's newest checkpoint records. */
const recorded = (dir: string) => {
  const ckpt = readdirSync(dir)
    .filter((d) => d.startsWith('checkpoint-'))
    .sort()
    .pop()!;
  return JSON.parse(readFileSync(path.join(dir, ckpt, 'trainer.json'), 'utf8')).config as {
    parallel: unknown;
    train: { gradAccumulation: number };
  };
};

beforeAll(async () => {
  writeFileSync(
    path.join(tmp, 'corpus.txt'),
    Array.from(
      { length: 80 },
      (_, i) => `Paragraph ${i}: a layout is configuration like the model, line ${i * 7}.`,
    ).join('\n\n'),
  );
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
  writeFileSync(layoutYaml, 'parallel:\n  pp: 2\n  dp: 2\n  zero: 1\n  microbatches: 4\n');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the parallel layout from a preset, a YAML file, --set and flags', () => {
  it('tiny-pp2dp2 gives the single-process losses; the YAML, --set and flag layouts give the same run', () => {
    const out = (name: string) => path.join(tmp, name);
    const runs: [string, string[]][] = [
      ['single', ['--preset', 'tiny-lfa', '--microbatches', '4']],
      ['preset', ['--preset', 'tiny-pp2dp2']],
      ['yaml', ['--preset', 'tiny-lfa', '--config', layoutYaml]],
      [
        'set',
        [
          '--preset',
          'tiny-lfa',
          '--set',
          'parallel.pp=2',
          '--set',
          'parallel.dp=2',
          '--set',
          'parallel.zero=1',
          '--set',
          'parallel.microbatches=4',
        ],
      ],
      ['flags', ['--preset', 'tiny-lfa', '--pp', '2', '--dp', '2', '--zero', '1', '--microbatches', '4']],
    ];
    for (const [name, args] of runs) {
      const r = train([...args, ...shape, '--out', out(name)]);
      expect(r.code, `${name}: ${r.err}`).toBe(0);
    }
    expect(series(out('preset'), 'loss')).toHaveLength(4);
    expectClose(series(out('preset'), 'loss'), series(out('single'), 'loss'));
    expectClose(series(out('preset'), 'gradNorm'), series(out('single'), 'gradNorm'));
    expectClose(series(out('preset'), 'validLoss'), series(out('single'), 'validLoss'));
    const layout = {
      pp: 2,
      dp: 2,
      zero: 1,
      partition: 'uniform',
      schedule: '1f1b',
      recompute: 'none', // the default: every activation kept, no layer forward twice
      transport: 'threads',
      microbatches: 4,
    };
    for (const name of ['preset', 'yaml', 'set', 'flags']) {
      expect(series(out(name), 'loss'), name).toEqual(series(out('preset'), 'loss'));
      expect(series(out(name), 'gradNorm'), name).toEqual(series(out('preset'), 'gradNorm'));
      expect(recorded(out(name)).parallel, name).toEqual(layout); // the checkpoint records the layout that trained it
    }
    expect(recorded(out('single')).parallel).toMatchObject({ pp: 1, dp: 1, microbatches: 4 });
    expect(recorded(out('single')).train.gradAccumulation).toBe(4);
  });

  it('a bad layout from --set, a file or flags is a one-line error naming the field', async () => {
    const o = [...shape, '--steps', '1', '--out', path.join(tmp, 'bad')];
    const bad = path.join(tmp, 'bad.yaml');
    writeFileSync(bad, 'parallel:\n  pp: 2\n  dp: 3\n  microbatches: 4\n');
    const cases: [string[], string | RegExp][] = [
      [
        ['--preset', 'tiny-lfa', '--set', 'parallel.zero=3'],
        'error: invalid config: parallel.zero = 3; expected an integer >= 0 <= 2',
      ],
      [
        ['--preset', 'tiny-lfa', '--set', 'parallel.stages=2'],
        /^error: invalid config: unknown field parallel\.stages; known fields: pp, partition, schedule, recompute, microbatches, dp, zero, transport$/,
      ],
      [
        ['--preset', 'tiny-lfa', '--config', bad],
        /^error: parallel\.dp = 3 does not divide the step's 4 micro-batches/,
      ],
      [['--preset', 'tiny-pp2dp2', '--dp', '3'], /^error: --dp 3 does not divide the step's 4 micro-batches/],
      [
        ['--preset', 'tiny-pp2dp2', '--set', 'train.gradAccumulation=2'],
        'error: parallel.microbatches = 4 and train.gradAccumulation = 2 disagree: both are the micro-batches of one optimizer step; set one of them',
      ],
      [
        ['--preset', 'tiny-pp2dp2', '--transport', 'udp'],
        'error: --transport "udp" is not a registered transport (transports: tcp, threads)',
      ],
    ];
    for (const [args, want] of cases) {
      const r = await yuan('train', ...args, ...o);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.err.split('\n'), args.join(' ')).toHaveLength(1);
      if (typeof want === 'string') expect(r.err).toBe(want);
      else expect(r.err).toMatch(want);
    }
  });
});
