// LoRA fine-tuning end to end against Hugging Face PEFT: `yuan train --lora` fine-tunes the tiny YUAN 2.0 fixture on
// prompt/answer SFT data, and the adapter it saves loads with `peft` (`PeftModel.from_pretrained`, PEFT's own key names
// and LoRA layers) onto the base through transformers' `from_pretrained` and gives `yuan forward --peft`'s logits;
// `yuan adapter merge` gives the same logits without the adapter, as PEFT's `merge_and_unload` does. The base model
// classes are hf_yuan_loader.py's (our PyTorch YUAN 2.0 as a PreTrainedModel); with YUAN_OFFICIAL_MODELING pointing at
// a copy of YUAN's yuan_hf_model.py, PEFT puts the adapter on YUAN's own modeling code too. Fused weights are the
// trap: yuan stores q_proj/k_proj as one `qk_proj` and up_proj/gate_proj as one `up_gate_proj`, so an adapter on one
// half (q_proj, gate_proj) must land on exactly that half's output columns.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint, saveCheckpoint } from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { attentionNamed } from '../../model/test/attention.js';
import { repoRoot, shared, yuanProcess } from './helpers.js';

/** The Python with torch, transformers and peft (.ci/run installs them into `.venv-clients`; YUAN_TORCH_PYTHON overrides). */
const python = process.env.YUAN_TORCH_PYTHON ?? path.join(repoRoot, '.venv-clients', 'bin', 'python');
const loader = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peft_lora_loader.py');
const hfLoader = path.join(path.dirname(fileURLToPath(import.meta.url)), 'hf_yuan_loader.py');
const fixture = path.join(shared, 'fixtures', 'yuan2-tiny');
const official = process.env.YUAN_OFFICIAL_MODELING;

/** Why the Python side cannot run here, in one line; undefined when it can (found, not imported: that takes long). */
const noPeft = ((): string | undefined => {
  if (!existsSync(python))
    return `no Python at ${python} (set YUAN_TORCH_PYTHON; .ci/run installs torch, transformers and peft into .venv-clients)`;
  const find =
    "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('torch', 'transformers', 'safetensors', 'peft')))";
  if (spawnSync(python, ['-c', find]).status !== 0)
    return `${python} lacks torch, transformers, safetensors or peft (.ci/run installs them into .venv-clients)`;
  return undefined;
})();
const noFixture = existsSync(fixture) ? undefined : `no ${fixture} (CI places ../shared beside the repository)`;
const why = noPeft ?? noFixture;
const skipped = (reason: string | undefined): string => (reason ? ` (skipped: ${reason})` : '');

const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-peft-'));
const lookup = attentionNamed;
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'gate_proj', 'down_proj'];

type Logits = number[][][];
interface PeftLoad {
  logits: Logits;
  merged: Logits;
  lora_modules: string[];
  missing: string[];
  unexpected: string[];
  max_weight_diff: number;
  error?: string;
}

function maxAbs(a: Logits, b: Logits): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => v.forEach((x, k) => (m = Math.max(m, Math.abs(x - b[i][j][k]))))));
  return m;
}

/** Logits of `yuan forward` (the built CLI) with the given extra arguments. */
function yuanForward(args: string[], input: string): Logits {
  const output = path.join(tmp, `forward-${Math.random().toString(36).slice(2)}.json`);
  const r = yuanProcess(['forward', ...args, '--input', input, '--output', output]);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(readFileSync(output, 'utf8')).logits;
}

/** A LoRA run of the CLI over `base`: its run folder. */
function trainLora(base: string, data: string, name: string, flags: string[]): string {
  const out = path.join(tmp, name);
  const set = [
    'train.seqLength=32',
    'train.microBatchSize=2',
    'train.lr=2e-2',
    'train.warmupSteps=1',
    'train.checkpointEvery=2',
    'train.validEvery=0',
  ];
  const r = yuanProcess([
    'train',
    '--model',
    base,
    ...flags,
    ...set.flatMap((s) => ['--set', s]),
    '--data',
    data,
    '--steps',
    '4',
    '--out',
    out,
    '--json',
  ]);
  expect(r.code, r.err).toBe(0);
  expect(JSON.parse(r.out)).toMatchObject({ adapter: 'lora', steps: 4 });
  return out;
}

describe.skipIf(!!why)(`LoRA adapters saved by yuan train load with Hugging Face PEFT${skipped(why)}`, () => {
  const base = path.join(tmp, 'base');
  const input = path.join(tmp, 'in.json');
  let all = '';
  let halves = '';
  let peft: Record<string, Record<string, PeftLoad>> = {};

  beforeAll(async () => {
    await initBackend('cpu');
    // the fixture as yuan exports it (config.json with the keys YUAN's modeling file reads)
    const model = await loadCheckpoint(fixture, lookup);
    await saveCheckpoint(base, model);
    model.dispose();
    writeFileSync(
      input,
      JSON.stringify({ input_ids: JSON.parse(readFileSync(path.join(fixture, 'expected.json'), 'utf8')).input_ids }),
    );
    // SFT data: prompt/answer pairs, the loss on the answers only
    const sft = path.join(tmp, 'sft.jsonl');
    writeFileSync(
      sft,
      Array.from({ length: 40 }, (_, i) =>
        JSON.stringify({ prompt: `Question ${i}: what is ${i} plus ${i}?`, answer: ` ${2 * i}.` }),
      ).join('\n'),
    );
    const data = path.join(tmp, 'data');
    const prep = yuanProcess(['data', 'prepare', sft, '--tokenizer', 'bytes', '--output', data]);
    expect(prep.code, prep.err).toBe(0);
    // every linear layer, with dropout; and one half of each fused weight only
    all = trainLora(base, data, 'all', [
      '--lora-rank',
      '4',
      '--lora-alpha',
      '8',
      '--lora-dropout',
      '0.05',
      '--lora-targets',
      ALL.join(','),
    ]);
    halves = trainLora(base, data, 'halves', [
      '--lora-rank',
      '2',
      '--lora-alpha',
      '6',
      '--lora-targets',
      'k_proj,gate_proj',
    ]);
    const output = path.join(tmp, 'peft.json');
    const adapters = [all, halves].map((d) => path.join(d, 'checkpoint-00000004'));
    const args = [
      loader,
      '--model',
      base,
      '--adapter',
      adapters.join(','),
      '--input',
      input,
      '--output',
      output,
      '--variants',
      official ? 'yuan,official' : 'yuan',
    ];
    const r = spawnSync(python, official ? [...args, '--official', official] : args, { encoding: 'utf8' });
    expect(r.status, `${python} ${path.basename(loader)} failed:\n${r.stderr.slice(-3000)}`).toBe(0);
    const got = JSON.parse(readFileSync(output, 'utf8')).adapters as Record<
      string,
      { variants: Record<string, PeftLoad> }
    >;
    peft = { all: got[adapters[0]].variants, halves: got[adapters[1]].variants };
  }, 600_000);

  /** Expects PEFT to have loaded the adapter whole and to give `want` with it. */
  function expectPeft(load: PeftLoad, want: Logits, modules: string[], what: string): void {
    expect(load.error, what).toBeUndefined();
    expect(load.lora_modules, `${what}: the modules PEFT put LoRA on`).toEqual(modules);
    expect({ missing: load.missing, unexpected: load.unexpected }, what).toEqual({ missing: [], unexpected: [] });
    expect(load.max_weight_diff, what).toBe(0);
    expect(maxAbs(load.logits, want), `${what}: max |logit difference| with the adapter`).toBeLessThan(1e-4);
  }

  const modulesOf = (names: string[]) =>
    [0, 1]
      .flatMap((l) =>
        names.map(
          (n) =>
            `base_model.model.model.layers.${l}.${n.endsWith('_proj') && ['up_proj', 'gate_proj', 'down_proj'].includes(n) ? 'mlp' : 'self_attn'}.${n}`,
        ),
      )
      .sort();

  it("PEFT puts the adapter on the base (every linear layer) and gives yuan forward --peft's logits, which differ from the base's", () => {
    const want = yuanForward(['--model', base, '--peft', all], input);
    expect(
      maxAbs(want, yuanForward(['--model', base], input)),
      'the trained adapter changes the logits',
    ).toBeGreaterThan(1e-2);
    expectPeft(peft.all.yuan, want, modulesOf(ALL), 'hf_yuan_loader YUAN + PeftModel');
  });

  it('an adapter on one half of each fused weight (k_proj of qk_proj, gate_proj of up_gate_proj) lands on that half', () => {
    const want = yuanForward(['--model', base, '--peft', path.join(halves, 'checkpoint-00000004')], input);
    expect(maxAbs(want, yuanForward(['--model', base], input))).toBeGreaterThan(1e-3);
    expectPeft(peft.halves.yuan, want, modulesOf(['k_proj', 'gate_proj']), 'k_proj + gate_proj only');
  });

  it("yuan adapter merge gives the adapter's logits without it: yuan forward, transformers from_pretrained and PEFT's own merge agree", () => {
    const want = yuanForward(['--model', base, '--peft', all], input);
    const merged = path.join(tmp, 'merged');
    const r = yuanProcess(['adapter', 'merge', '--model', base, '--peft', all, '--out', merged]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(path.join(merged, 'adapter_config.json'))).toBe(false);
    expect(maxAbs(yuanForward(['--model', merged], input), want), 'yuan forward of the merged folder').toBeLessThan(
      1e-4,
    );
    expect(maxAbs(peft.all.yuan.merged, want), 'PEFT merge_and_unload').toBeLessThan(1e-4);
    const output = path.join(tmp, 'merged-hf.json');
    const h = spawnSync(
      python,
      [hfLoader, '--model', merged, '--input', input, '--output', output, '--variants', 'yuan'],
      { encoding: 'utf8' },
    );
    expect(h.status, h.stderr.slice(-3000)).toBe(0);
    expect(
      maxAbs(JSON.parse(readFileSync(output, 'utf8')).variants.yuan.logits, want),
      'from_pretrained of the merged folder',
    ).toBeLessThan(1e-4);
  });

  it.skipIf(!official)(
    `PEFT puts the adapters on YUAN's own yuan_hf_model.py (YUAN_OFFICIAL_MODELING) with the same logits${skipped(official ? undefined : "YUAN_OFFICIAL_MODELING is not set (the path of a copy of YUAN's yuan_hf_model.py)")}`,
    () => {
      const want = yuanForward(['--model', base, '--peft', all], input);
      expectPeft(peft.all.official, want, modulesOf(ALL), `${official} + PeftModel`);
      expect(maxAbs(peft.all.official.merged, want), `${official}: PEFT merge_and_unload`).toBeLessThan(1e-4);
      expectPeft(
        peft.halves.official,
        yuanForward(['--model', base, '--peft', halves], input),
        modulesOf(['k_proj', 'gate_proj']),
        `${official}, k_proj + gate_proj only`,
      );
    },
  );
});
