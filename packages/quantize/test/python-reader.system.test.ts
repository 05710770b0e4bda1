import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lfaAttention } from '@yuan/attention-lfa';
import { PluginRegistry, Rng } from '@yuan/core';
import { attentionLookup } from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import { describe, expect, it } from 'vitest';
import {
  dequantizedWeights,
  GPTQ_DEFAULTS,
  gptqQuantizer,
  quantizeCheckpoint,
  readQuantizedCheckpoint,
  RTN_DEFAULTS,
  rtnQuantizer,
} from '../src/index.js';

// An independent reader of the files `yuan quantize` writes: plain Python (standard library only) following AutoGPTQ's
// v1 convention (test/autogptq_dequant.py). QUANTIZE_PYTHON overrides; else .venv-clients (what .ci/run makes), else python3.
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');
const fixture = path.resolve(repo, '../shared/fixtures/yuan2-tiny');
const candidates = [process.env.QUANTIZE_PYTHON, path.join(repo, '.venv-clients/bin/python'), 'python3'].filter(
  (p): p is string => !!p,
);
const python = candidates.find(
  (p) => spawnSync(p, ['-c', 'import array, struct, json'], { stdio: 'ignore' }).status === 0,
);
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-quantize-py-'));
const lookup = attentionLookup(new PluginRegistry().register(lfaAttention as never, '@yuan/attention-lfa').freeze());

const why = !existsSync(fixture)
  ? `needs ${fixture}`
  : !python
    ? 'no Python 3 found (QUANTIZE_PYTHON, .venv-clients, python3)'
    : undefined;

describe.skipIf(why)(
  `the GPTQ files read by a plain-Python AutoGPTQ-convention reader${why ? ` (skipped: ${why})` : ''}`,
  () => {
    for (const [label, quantizer, options] of [
      ['rtn 8-bit per channel', rtnQuantizer, { ...RTN_DEFAULTS, bits: 8, groupSize: -1 }],
      ['gptq 4-bit group 32 act-order', gptqQuantizer, { ...GPTQ_DEFAULTS, groupSize: 32, actOrder: true }],
      ['rtn 4-bit symmetric group 16', rtnQuantizer, { ...RTN_DEFAULTS, groupSize: 16, sym: true }],
    ] as const) {
      it(`gives the same weights as dequantizedWeights (${label})`, async () => {
        await initBackend();
        const rng = new Rng(4);
        const calibration = Array.from({ length: 8 }, () => Int32Array.from({ length: 32 }, () => rng.int(512)));
        const out = path.join(tmp, label.replace(/\W+/g, '-'));
        await quantizeCheckpoint({ model: fixture, out, quantizer, options, lookup, calibration });
        const r = spawnSync(python!, [path.join(here, 'autogptq_dequant.py'), out], {
          encoding: 'utf8',
          maxBuffer: 256 << 20,
        });
        expect(r.status, r.stderr).toBe(0);
        const theirs = JSON.parse(r.stdout) as Record<string, { shape: number[]; values: number[] }>;
        const ours = dequantizedWeights(await readQuantizedCheckpoint(out));
        // 7 linears and LFA's 2 convolutions (packed as [out, in·K]) per layer
        expect(Object.keys(theirs)).toHaveLength(18);
        for (const [base, t] of Object.entries(theirs)) {
          const w = ours.get(`${base}.weight`)!;
          expect(w.length, base).toBe(t.shape[0] * t.shape[1]);
          let max = 0;
          t.values.forEach((v, i) => (max = Math.max(max, Math.abs(v - w[i]))));
          expect(max, base).toBeLessThan(1e-6);
        }
      });
    }
  },
);
