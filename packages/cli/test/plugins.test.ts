import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './run.js';

// A user's project outside the workspace: @yuan/core and @yuan/tensor installed (linked) as the plugin's peers, the
// example attention plugin installed as a package, an evaluator and a filter plugin as plain files. Nothing in core,
// model or cli knows any of them.
const project = mkdtempSync(path.join(tmpdir(), 'yuan-plugin-project-'));
const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
const tiny = [
  '--set',
  'model.hiddenSize=32',
  '--set',
  'model.numHeads=4',
  '--set',
  'model.numLayers=2',
  '--set',
  'model.ffnSize=64',
  '--set',
  'train.seqLength=16',
  '--set',
  'train.microBatchSize=2',
  '--set',
  'train.warmupSteps=1',
];

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: project, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const EVALUATOR = `
// An evaluator plugin: asks the model to continue N prompts and scores the share of completions that are non-empty.
export const nonEmpty = {
  kind: 'evaluator',
  name: 'non-empty',
  description: 'share of non-empty completions (example third-party evaluator)',
  defaults: { prompts: 3 },
  flags: { prompts: { option: 'prompts', type: 'int', help: 'number of prompts' } },
  validate(o) {
    if (!Number.isInteger(o.prompts) || o.prompts < 1) throw new Error('non-empty: prompts must be a positive integer');
    return o;
  },
  async evaluate(ctx, options) {
    let hits = 0;
    for (let i = 0; i < options.prompts; i++) {
      const [text] = await ctx.model.generate({ prompt: 'Line ' + i + ':', maxNewTokens: 4, temperature: 0 });
      ctx.log({ id: String(i), completion: text });
      if (text.length > 0) hits++;
    }
    return { task: 'non-empty', metrics: { nonEmpty: hits / options.prompts }, count: options.prompts };
  },
};
export const plugins = [nonEmpty];
`;

const FILTER = `
// A filter plugin: drops documents that contain a marker word.
export const noMarker = {
  kind: 'filter',
  name: 'no-marker',
  description: 'drops documents containing options.marker (example third-party filter)',
  defaults: { marker: 'SPAM' },
  create(options) {
    return { apply: (doc) => (doc.text.includes(options.marker) ? { keep: false, reason: 'marker', detail: options.marker } : { keep: true }) };
  },
};
export const plugins = [noMarker];
`;

describe('third-party plugins from outside the workspace, through the yuan CLI', () => {
  beforeAll(() => {
    const nm = path.join(project, 'node_modules');
    mkdirSync(path.join(nm, '@yuan'), { recursive: true });
    symlinkSync(path.join(repoRoot, 'packages/core'), path.join(nm, '@yuan/core'));
    symlinkSync(path.join(repoRoot, 'packages/tensor'), path.join(nm, '@yuan/tensor'));
    // the package as published: its files, not the workspace's links to its peers
    cpSync(path.join(repoRoot, 'examples/attention-mqa'), path.join(nm, 'yuan-attention-mqa'), {
      recursive: true,
      filter: (src) => !src.includes('node_modules'),
    });
    mkdirSync(path.join(project, 'plugins'));
    writeFileSync(path.join(project, 'plugins/evaluator.js'), EVALUATOR);
    writeFileSync(path.join(project, 'plugins/filter.js'), FILTER);
    writeFileSync(
      path.join(project, 'mqa.yaml'),
      'plugins: [yuan-attention-mqa, ./plugins/evaluator.js]\nattention: { name: mqa, options: { kvHeads: 1 } }\n',
    );
    writeFileSync(
      path.join(project, 'text.txt'),
      Array.from({ length: 60 }, (_, i) => `Line ${i}: the plugin trains, saves and reloads.`).join('\n'),
    );
  });

  it('without the plugin, the name is a one-line error listing the registered attention plugins', () => {
    const r = run(
      'train',
      '--preset',
      'tiny-mha',
      '--set',
      'attention.name=mqa',
      '--data',
      'nowhere',
      '--steps',
      '1',
      '--out',
      'x',
    );
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(
      /^error: unknown attention plugin "mqa" \(registered: based, gqa, landmark, lfa, lpa, mha, mla\)$/,
    );
  });

  it('an attention plugin package named in a config trains, generates and evaluates perplexity; plugins list shows it', () => {
    expect(run('data', 'prepare', 'text.txt', '--tokenizer', 'bytes', '--output', 'data').code).toBe(0);
    const train = run(
      'train',
      '--preset',
      'tiny-mha',
      '--config',
      'mqa.yaml',
      ...tiny,
      '--data',
      'data',
      '--steps',
      '3',
      '--out',
      'run',
    );
    expect(train.err).not.toMatch(/error/);
    expect(train.code).toBe(0);
    const ckpt = path.join(project, 'run/checkpoint-00000003');
    const hf = JSON.parse(readFileSync(path.join(ckpt, 'config.json'), 'utf8'));
    expect(hf.yuan.attention).toEqual({ name: 'mqa', options: { kvHeads: 1 } });
    // the plugin's own parameter shapes were trained and saved: K is [kvHeads·headDim, hidden] = [8, 32]
    const st = readFileSync(path.join(ckpt, 'model.safetensors'));
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
    expect(header['model.layers.0.self_attn.k_proj.weight'].shape).toEqual([8, 32]);
    expect(header['model.layers.0.self_attn.q_proj.weight'].shape).toEqual([32, 32]);

    // the checkpoint records its plugins, so generate and eval reload it with no flag
    const gen = run('generate', '--model', 'run', '--prompt', 'Line', '--max-new-tokens', '5', '--json');
    expect(gen.code, gen.err).toBe(0);
    expect(JSON.parse(gen.out).ids.length).toBeGreaterThan(0);
    const ppl = run('eval', 'perplexity', '--model', 'run', '--file', 'text.txt', '--output', 'ppl', '--json');
    expect(ppl.code, ppl.err).toBe(0);
    const result = JSON.parse(ppl.out);
    expect(result.metrics.perplexity).toBeCloseTo(Math.exp(result.metrics.loss), 6);
    expect(result.metrics.loss).toBeGreaterThan(1);

    const list = JSON.parse(run('plugins', 'list', '--config', 'mqa.yaml', '--json').out) as {
      kind: string;
      name: string;
      source: string;
      options: unknown;
    }[];
    expect(list.find((p) => p.name === 'mqa')).toEqual(
      expect.objectContaining({ kind: 'attention', source: 'yuan-attention-mqa', options: { kvHeads: 1 } }),
    );
    expect(list.find((p) => p.name === 'non-empty')?.source).toBe(path.join(project, 'plugins/evaluator.js'));
  });

  it('yuan plan counts the plugin from its own descriptors (activation terms, FLOPs), and imports its HF weights', () => {
    // under full recompute the backward's working set holds the recomputed layer, so the plugin's terms show there
    const full = ['--pp', '2', '--recompute', 'full', '--json'];
    const plan = run('plan', '--preset', 'tiny-mha', '--config', 'mqa.yaml', ...tiny, ...full);
    expect(plan.code, plan.err).toBe(0);
    const mqa = JSON.parse(plan.out);
    expect(mqa.notes[0]).toMatch(/working set of our mqa layer/);
    const mha = JSON.parse(run('plan', '--preset', 'tiny-mha', ...tiny, ...full).out);
    // one K/V head of 8: K and V projections [B,S,8] (kept and their gradients) on top of basic attention's terms, as
    // the copies for every head replace its K, V projections; 2·(32·32 − 8·32) fewer fresh parameter gradients
    const bs = 2 * 16;
    expect(mqa.stages[0].workingBytes - mha.stages[0].workingBytes).toBe(4 * (4 * bs * 8 - 2 * (32 * 32 - 8 * 32)));
    const time = run(
      'plan',
      '--time',
      '--preset',
      'tiny-mha',
      '--config',
      'mqa.yaml',
      ...tiny,
      '--chips',
      '8',
      '--pp',
      '8',
      '--tp',
      '1',
      '--microbatches',
      '8',
    );
    expect(time.code, time.err).toBe(0);
    expect(time.out).toMatch(/attention "mqa" projections 5·H²/); // 2·H·(2H + 2·8) per token, H = 32
    // a checkpoint without yuan's section (as a Hugging Face export) is recognized as mqa with its kvHeads
    const hf = path.join(project, 'run-hf');
    cpSync(path.join(project, 'run/checkpoint-00000003'), hf, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(hf, 'config.json'), 'utf8'));
    delete config.yuan;
    writeFileSync(path.join(hf, 'config.json'), JSON.stringify(config));
    const gen = run(
      'generate',
      '--model',
      'run-hf',
      '--plugin',
      'yuan-attention-mqa',
      '--tokenizer',
      'bytes',
      '--prompt',
      'Line',
      '--max-new-tokens',
      '3',
      '--json',
    );
    expect(gen.code, gen.err).toBe(0);
    // the plugin named (--plugin) wins over the built-in gqa, which recognizes the same tensors; without the flag the
    // checkpoint loads as gqa with one key/value head, giving the same logits
    writeFileSync(path.join(project, 'ids.json'), JSON.stringify({ input_ids: [[76, 105, 110, 101, 32]] }));
    const logits = (...flags: string[]): number[] => {
      const r = run('forward', '--model', 'run-hf', '--input', 'ids.json', ...flags);
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out).logits as number[][][]).flat(2);
    };
    const mine = logits('--plugin', 'yuan-attention-mqa');
    const builtin = logits();
    expect(builtin.length).toBe(mine.length);
    builtin.forEach((v, i) => expect(v).toBeCloseTo(mine[i], 4));
    const asMqa = run('convert', '--model', 'run-hf', '--plugin', 'yuan-attention-mqa', '--to', 'mla', '--out', 'x');
    expect(asMqa.err).toMatch(/cannot convert from "mqa"/);
  });

  it('an evaluator plugin runs under yuan eval with the flags it declares', () => {
    const r = run(
      'eval',
      'non-empty',
      '--plugin',
      './plugins/evaluator.js',
      '--model',
      'run',
      '--prompts',
      '2',
      '--output',
      'ne',
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(result.task).toBe('non-empty');
    expect(result.count).toBe(2);
    expect(readFileSync(result.samplesFile, 'utf8').trim().split('\n')).toHaveLength(2);
    const bad = run('eval', 'non-empty', '--plugin', './plugins/evaluator.js', '--model', 'run', '--timeout', '3');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/Unknown option '--timeout'/);
  });

  it('a filter plugin runs under yuan filter', () => {
    writeFileSync(
      path.join(project, 'docs.jsonl'),
      ['clean text one', 'SPAM inside', 'clean text two']
        .map((t, i) => JSON.stringify({ id: String(i), text: t }))
        .join('\n') + '\n',
    );
    writeFileSync(path.join(project, 'filter.yaml'), 'filters: [{ name: no-marker, options: { marker: SPAM } }]\n');
    const r = run(
      'filter',
      '--input',
      'docs.jsonl',
      '--output',
      'kept.jsonl',
      '--config',
      'filter.yaml',
      '--plugin',
      './plugins/filter.js',
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const kept = readFileSync(path.join(project, 'kept.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id);
    expect(kept).toEqual(['0', '2']);
  });
});
