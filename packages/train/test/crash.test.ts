import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig } from '@yuan/core';
import { initBackend } from '@yuan/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  loadTrainCheckpoint,
  resolveResumeDir,
  saveTrainCheckpoint,
  AdamW,
  type CheckpointContents,
} from '../src/index.js';
import { listCheckpoints, mhaAttention, modelParameters, YuanModel } from '@yuan/model';

const config = resolveConfig({
  model: { vocabSize: 40, hiddenSize: 8, numLayers: 1, numHeads: 2, ffnSize: 16, maxPositions: 16 },
  attention: { name: 'mha', options: {} },
});
const lookup = () => mhaAttention as never;
const root = mkdtempSync(path.join(tmpdir(), 'yuan-crash-'));

async function contents(step: number): Promise<CheckpointContents> {
  const model = YuanModel.init(config, mhaAttention as never, step);
  const opt = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const grads = new Map([...model.params].map(([n, p]) => [n, p.clone()]));
  opt.update(model.params, grads, 1e-3);
  const c = {
    step,
    weights: await model.weights(),
    optimizer: await opt.exportState(),
    data: { epoch: 0, cursor: step } as never,
  };
  for (const g of grads.values()) g.dispose();
  opt.dispose();
  model.dispose();
  return c;
}

const meta = { config, specs: modelParameters(config, mhaAttention as never), seed: 0, totalSteps: 10, keep: 5 };

describe('training checkpoints survive a crash at any point', () => {
  let template: string;
  beforeAll(async () => {
    await initBackend('cpu');
    template = path.join(root, 'template');
    await saveTrainCheckpoint(template, await contents(2), meta);
    await saveTrainCheckpoint(template, await contents(4), meta);
  });

  it('a damaged newest checkpoint (each file truncated or deleted in turn) is never loaded: resume takes the one before', async () => {
    const files = readdirSync(path.join(template, 'checkpoint-00000004'));
    expect(files.sort()).toEqual([
      'config.json',
      'manifest.json',
      'model.safetensors',
      'optimizer.safetensors',
      'trainer.json',
    ]);
    for (const file of files) {
      for (const damage of ['truncate', 'delete'] as const) {
        const run = path.join(root, `${file}-${damage}`);
        cpSync(template, run, { recursive: true });
        const target = path.join(run, 'checkpoint-00000004', file);
        if (damage === 'delete') rmSync(target);
        else truncateSync(target, Math.floor(readFileSync(target).length / 2));
        const skipped: string[] = [];
        const dir = resolveResumeDir(run, (d, why) => skipped.push(`${path.basename(d)}: ${why}`));
        expect(path.basename(dir), `${damage} ${file}`).toBe('checkpoint-00000002');
        // the checkpoint passed over is reported with its problem (the run says so instead of silently going back)
        expect(skipped).toHaveLength(1);
        expect(skipped[0]).toMatch(new RegExp(`^checkpoint-00000004: .*(${file.replace('.', '\\.')}|manifest)`));
        const { contents: c } = await loadTrainCheckpoint(dir, config, lookup);
        expect(c.step).toBe(2);
        // with no complete checkpoint left, resuming is a one-line error
        rmSync(path.join(run, 'checkpoint-00000002', 'manifest.json'));
        expect(() => resolveResumeDir(run)).toThrow(/^[^\n]*no complete checkpoint to resume from[^\n]*$/);
        expect(() => resolveResumeDir(path.join(run, 'checkpoint-00000004'))).toThrow(/^cannot resume: [^\n]+$/);
      }
    }
  });

  it('a same-size corruption is caught by the manifest hash; missing optimizer moments are an error, not zeros', async () => {
    const run = path.join(root, 'flip');
    cpSync(template, run, { recursive: true });
    const target = path.join(run, 'checkpoint-00000004', 'model.safetensors');
    const bytes = readFileSync(target);
    bytes[bytes.length - 3] ^= 0xff;
    writeFileSync(target, bytes);
    await expect(loadTrainCheckpoint(resolveResumeDir(run), config, lookup)).rejects.toThrow(
      /^cannot resume: .*model\.safetensors does not match its SHA-256/,
    );

    const c = await contents(6);
    c.optimizer.moments.delete('v.model.norm.weight');
    const run2 = path.join(root, 'no-moment');
    await saveTrainCheckpoint(run2, c, meta);
    await expect(loadTrainCheckpoint(resolveResumeDir(run2), config, lookup)).rejects.toThrow(
      /optimizer\.safetensors has no v\.model\.norm\.weight: the optimizer state is incomplete/,
    );
  });

  it("a save removes staging folders of dead writers only, never a live writer's", async () => {
    const run = path.join(root, 'shared');
    mkdirSync(run, { recursive: true });
    const host = hostname().replace(/[^A-Za-z0-9_]/g, '_');
    const live = `.checkpoint-00000008.partial-${host}-${process.ppid}-abcd1234`;
    const dead = `.checkpoint-00000008.partial-${host}-999999999-abcd1234`;
    mkdirSync(path.join(run, live));
    mkdirSync(path.join(run, dead));
    await saveTrainCheckpoint(run, await contents(2), meta);
    expect(existsSync(path.join(run, live))).toBe(true);
    expect(existsSync(path.join(run, dead))).toBe(false);
    expect(listCheckpoints(run).map((d) => path.basename(d))).toEqual(['checkpoint-00000002']);
  });
});
