import { joinActivation, resolveConfig, type AttentionDescription, type JsonObject } from '@yuan/core';
import { LFA_DEFAULTS, lfaAttention } from '@yuan/attention-lfa';
import { mhaAttention, modelParameters } from '@yuan/model';
import { describe, expect, it } from 'vitest';
import {
  attentionShape,
  bytesPerParameter,
  headActivation,
  layerActivation,
  planPipeline,
  planSchedules,
  sumTerms,
  type ActivationShape,
  type PipelinePlanInput,
} from './index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function model(shape: JsonObject, plugin: AttentionDescription<any> = lfaAttention) {
  const config = resolveConfig({
    model: { maxPositions: 8192, ...shape },
    attention: { name: plugin.name, options: {} },
  });
  return { model: config.model, parameters: modelParameters(config, plugin), attention: { plugin } };
}

const yuan2b = model({ vocabSize: 135040, hiddenSize: 2048, numLayers: 24, numHeads: 32, ffnSize: 8192 });
const tiny = model({ vocabSize: 264, hiddenSize: 128, numLayers: 4, numHeads: 4, ffnSize: 512 });

describe('planPipeline', () => {
  it('counts parameters from the model list: yuan2-2b has 2,088,724,480; the last stage adds the tied head copy', () => {
    const one = planPipeline({ ...yuan2b, stages: 1, microbatches: 1, microBatchSize: 1, seqLength: 128 });
    expect(one.stages[0].parameters).toBe(2088724480);
    expect(one.modelParameters).toBe(2088724480);
    const four = planPipeline({ ...yuan2b, stages: 4, microbatches: 8, microBatchSize: 1, seqLength: 128 });
    expect(four.stages.reduce((n, s) => n + s.parameters, 0)).toBe(2088724480 + 135040 * 2048);
    const perLayer = 75506688; // spec §3
    expect(four.stages[1].parameters).toBe(6 * perLayer);
    expect(four.stages[0].parameters).toBe(6 * perLayer + 135040 * 2048);
    expect(four.stages[3].parameters).toBe(6 * perLayer + 135040 * 2048 + 2048);
  });

  it('Megatron bytes per parameter: 16 fp32, 18 bf16, 6 + 12/D with the distributed optimizer', () => {
    expect(bytesPerParameter('fp32', 0, 8).total).toBe(16);
    expect(bytesPerParameter('bf16', 0, 8).total).toBe(18);
    expect(bytesPerParameter('bf16', 1, 8).total).toBe(6 + 12 / 8);
    expect(bytesPerParameter('fp32', 1, 4).total).toBe(8 + 8 / 4);
    expect(bytesPerParameter('bf16', 2, 4).total).toBe(2 + 16 / 4);
    const p = planPipeline({
      ...yuan2b,
      stages: 2,
      dataParallel: 4,
      microbatches: 8,
      microBatchSize: 1,
      seqLength: 64,
      precision: 'bf16',
      zero: 1,
    });
    expect(p.stages[1].weightBytes + p.stages[1].gradientBytes + p.stages[1].optimizerBytes).toBe(
      p.stages[1].parameters * 9,
    );
  });

  it('the layer formula: hand-computed element counts for YUAN LFA with fused kernels', () => {
    const x: ActivationShape = { batch: 2, seq: 16, hidden: 128, heads: 4, ffn: 512, vocab: 264, fusedKernels: true };
    const [B, S, H, A, F, V] = [2, 16, 128, 4, 512, 264];
    const terms = (y: ActivationShape) => layerActivation(y, lfaAttention.activation!(attentionShape(y), LFA_DEFAULTS));
    const layer = terms(x);
    // the fused attention core keeps O [B,A,S,d] and the log-sum-exp [B,A,S]; its backward's workspace is two min(128, S) × 128 tiles and [S]
    // the fused RoPE kernel keeps nothing of its own (its Q, K inputs are the split's, its outputs head-major) and its
    // backward makes dQ, dK: 8 [B,S,H] fewer kept and 9 fewer gradients than the composed RoPE
    expect(sumTerms(layer.saved)).toBe(28.5 * B * S * H + 3 * B * S * F + B * A * S + 3 * B * S + 3 * B * H);
    expect(sumTerms(layer.gradients)).toBe(31.5 * B * S * H + 3 * B * S * F + 2 * S * 128 + S + 1.5 * B * H);
    const composed = terms({ ...x, fusedKernels: false, fusedAttention: true });
    expect(sumTerms(composed.saved) - sumTerms(layer.saved)).toBe(
      (3 * 2 + 8) * B * S * H + 3 * 2 * B * S + 4 * B * S * F,
    );
    // the op-by-op attention core: QKᵀ, scaled, probabilities [B,A,S,S] kept, 4 score-sized gradients
    const ops = terms({ ...x, fusedAttention: false });
    expect(sumTerms(ops.saved) - sumTerms(layer.saved)).toBe(3 * B * A * S * S - B * S * H - B * A * S);
    expect(sumTerms(ops.gradients) - sumTerms(layer.gradients)).toBe(4 * B * A * S * S - 2 * S * 128 - S);
    const head = headActivation(x);
    expect(sumTerms(head.saved) + sumTerms(head.gradients)).toBe(8 * B * S * V + 3 * B * S * H + B * S);
  });

  it('full recompute keeps each layer input per in-flight micro-batch; stage keeps only the stage input', () => {
    const base: PipelinePlanInput = {
      ...tiny,
      stages: 2,
      microbatches: 4,
      microBatchSize: 2,
      seqLength: 16,
      recompute: 'full',
    };
    const bsh = 2 * 16 * 128;
    const full = planPipeline(base);
    expect(full.stages.map((s) => s.inFlight)).toEqual([2, 1]);
    expect(full.stages[0].checkpointBytes).toBe(2 * 2 * bsh * 4); // in-flight 2 × 2 layers × [B,S,H] × 4 bytes
    expect(full.stages[1].checkpointBytes).toBe(1 * 2 * bsh * 4);
    const stage = planPipeline({ ...base, recompute: 'stage' });
    expect(stage.stages[0].checkpointBytes).toBe(2 * 2 * 16 * 4); // int32 token ids only
    expect(stage.stages[1].checkpointBytes).toBe(1 * bsh * 4);
    const gpipe = planPipeline({ ...base, schedule: 'gpipe' });
    expect(gpipe.stages.map((s) => s.inFlight)).toEqual([4, 4]);
    for (const p of [full, stage, gpipe]) {
      for (const s of p.stages) {
        expect(s.activationBytes).toBe(s.checkpointBytes + s.workingBytes);
        expect(s.peakBytes).toBe(s.weightBytes + s.gradientBytes + s.optimizerBytes + s.activationBytes);
      }
    }
    expect(full.bubbleFraction).toBeCloseTo(1 / 5, 12);
    expect(full.warnings).toEqual([]);
  });

  it('the paper example: 2,2,3,3,4,4,4,2 relieves the first stage that binds under uniform (op-by-op attention)', () => {
    const ex = model({ vocabSize: 135040, hiddenSize: 6144, numLayers: 24, numHeads: 48, ffnSize: 24576 });
    const input: PipelinePlanInput = {
      ...ex,
      stages: 8,
      microbatches: 16,
      microBatchSize: 1,
      seqLength: 4096,
      precision: 'bf16',
      fusedKernels: false,
    };
    const uniform = planPipeline(input);
    const blocks = planPipeline({ ...input, partition: '2,2,3,3,4,4,4,2' });
    expect(uniform.bindingStage).toBe(0);
    expect(blocks.stages[0].peakBytes).toBeLessThan(uniform.stages[0].peakBytes);
    expect(blocks.peakBytes).toBeLessThan(uniform.peakBytes);
    const memory = planPipeline({ ...input, partition: 'memory' });
    expect(memory.peakBytes).toBeLessThanOrEqual(blocks.peakBytes);
  });

  it('the paper example with the fused attention core: lower peaks, and 2,2,3,3,4,4,4,2 saves more against uniform', () => {
    const ex = model({ vocabSize: 135040, hiddenSize: 6144, numLayers: 24, numHeads: 48, ffnSize: 24576 });
    const input: PipelinePlanInput = {
      ...ex,
      stages: 8,
      microbatches: 16,
      microBatchSize: 1,
      seqLength: 4096,
      precision: 'bf16',
      recompute: 'full',
    };
    const saving = (fusedKernels: boolean) => {
      const uniform = planPipeline({ ...input, fusedKernels });
      const blocks = planPipeline({ ...input, fusedKernels, partition: '2,2,3,3,4,4,4,2' });
      return { uniform: uniform.peakBytes, saving: 1 - blocks.peakBytes / uniform.peakBytes };
    };
    const fused = saving(true);
    const ops = saving(false);
    expect(fused.uniform).toBeLessThan(ops.uniform);
    expect(fused.saving).toBeGreaterThan(ops.saving);
  });

  it("Fig. 3: 24 layers, hidden 6144, PP 8, 1F1B, full recompute: 2,2,3,3,4,4,4,2 saves 10–45% of uniform's peak", () => {
    const ex = model({ vocabSize: 135040, hiddenSize: 6144, numLayers: 24, numHeads: 48, ffnSize: 24576 });
    const input: PipelinePlanInput = {
      ...ex,
      stages: 8,
      microbatches: 16,
      microBatchSize: 1,
      seqLength: 4096,
      precision: 'bf16',
      schedule: '1f1b',
      recompute: 'full',
    };
    const uniform = planPipeline(input);
    const blocks = planPipeline({ ...input, partition: '2,2,3,3,4,4,4,2' });
    // the checkpoints the paper counts: 8·3 = 24 layer inputs on the first stage under uniform, at most 18 with the blocks
    const inputs = (p: typeof uniform) => p.stages.map((s) => s.inFlight * s.layers);
    expect(Math.max(...inputs(uniform))).toBe(24);
    expect(Math.max(...inputs(blocks))).toBe(18);
    const saving = 1 - blocks.peakBytes / uniform.peakBytes;
    expect(saving).toBeGreaterThan(0.1);
    expect(saving).toBeLessThan(0.45);
  });

  it('none keeps every layer tape per in-flight micro-batch (more than full), selective drops the op-by-op scores', () => {
    const base: PipelinePlanInput = { ...tiny, stages: 2, microbatches: 4, microBatchSize: 2, seqLength: 16 };
    const x: ActivationShape = { batch: 2, seq: 16, hidden: 128, heads: 4, ffn: 512, vocab: 264, fusedKernels: false };
    const layer = layerActivation(x, lfaAttention.activation!(attentionShape(x), LFA_DEFAULTS));
    const none = planPipeline({ ...base, fusedKernels: false });
    expect(none.recompute).toBe('none');
    const rope = 3.5 * 2 * 16 * 32;
    // the middle of a two-stage tiny model: stage 0 has the embedding (no saved terms), 2 layers, 2 in flight
    expect(none.stages[0].checkpointBytes).toBe(2 * (2 * sumTerms(layer.saved) + rope) * 4);
    const full = planPipeline({ ...base, fusedKernels: false, recompute: 'full' });
    for (const [n, f] of none.stages.map((s, i) => [s, full.stages[i]])) {
      expect(n.checkpointBytes).toBeGreaterThan(f.checkpointBytes);
      expect(n.workingBytes).toBeLessThan(f.workingBytes);
    }
    const selective = planPipeline({ ...base, fusedKernels: false, recompute: 'selective' });
    const scores = 3 * 2 * 4 * 16 * 16; // QKᵀ, scaled, probabilities [B,A,S,S]
    expect(none.stages[0].checkpointBytes - selective.stages[0].checkpointBytes).toBe(2 * 2 * scores * 4);
    // with the fused attention kernel selective is none
    const fusedNone = planPipeline(base);
    const fusedSelective = planPipeline({ ...base, recompute: 'selective' });
    expect(fusedSelective.stages).toEqual(fusedNone.stages);
    expect(fusedSelective.notes.join('\n')).toMatch(/recompute selective: as none/);
  });

  it('M < P warns (bubble) but plans; bad input is a one-line error', () => {
    const p = planPipeline({ ...tiny, stages: 4, microbatches: 2, microBatchSize: 1, seqLength: 8 });
    expect(p.warnings).toEqual([
      'M = 2 micro-batches < P = 4 stages: the pipeline never fills (bubble 60.0% of the step)',
    ]);
    const base = { ...tiny, stages: 2, microbatches: 4, microBatchSize: 1, seqLength: 8 };
    expect(() => planPipeline({ ...base, microbatches: 0 })).toThrow(
      /^micro-batches \(--microbatches\) must be an integer >= 1 \(got 0\)$/,
    );
    expect(() => planPipeline({ ...base, stages: 5 })).toThrow(/^more pipeline stages \(5\) than layers \(4\)/);
    expect(() => planPipeline({ ...base, partition: '1,2' })).toThrow(
      /^partition blocks 1,2 sum to 3 layers; the model has 4$/,
    );
    expect(() => planPipeline({ ...base, schedule: 'zb' })).toThrow(
      /^unknown schedule "zb" \(registered: 1f1b, gpipe, interleaved-1f1b, zb-h1, zb-h2, zb-v, zb-v-auto\)$/,
    );
    expect(() => planPipeline({ ...base, recompute: 'block' })).toThrow(/^recompute "block" .* is not offered/);
    expect(() => planPipeline({ ...base, recompute: 'some' })).toThrow(
      /^unknown recompute "some" \(expected none, selective, full or stage\)$/,
    );
    expect(() => planPipeline({ ...base, dataParallel: 3 })).toThrow(
      /^--dp 3 does not divide the step's 4 micro-batches/,
    );
    expect(() => planPipeline({ ...base, zero: 3 })).toThrow(/^--zero 3 is not 0, 1 or 2$/);
  });

  it('says whether the plan fits the given memory', () => {
    const p = planPipeline({ ...tiny, stages: 2, microbatches: 4, microBatchSize: 1, seqLength: 8 });
    expect(
      planPipeline({ ...tiny, stages: 2, microbatches: 4, microBatchSize: 1, seqLength: 8, memoryBytes: p.peakBytes })
        .fits,
    ).toBe(true);
    expect(
      planPipeline({
        ...tiny,
        stages: 2,
        microbatches: 4,
        microBatchSize: 1,
        seqLength: 8,
        memoryBytes: p.peakBytes - 1,
      }).fits,
    ).toBe(false);
  });
});

describe('a third-party attention plugin describes its own activation terms', () => {
  // basic attention's parameters and core, plus a scratch buffer [B,S,4H] kept for backward and a [B,S,2H] one of gradients
  const mha = mhaAttention;
  const scratch: AttentionDescription<Record<string, never>> = {
    ...mha,
    name: 'scratch',
    description: 'basic attention with extra buffers (test plugin)',
    activation: (shape, options) =>
      joinActivation(mha.activation!(shape, options), {
        saved: [{ name: 'scratch [B,S,4H]', elements: 4 * shape.batch * shape.seq * shape.hidden }],
        gradients: [{ name: 'd scratch [B,S,2H]', elements: 2 * shape.batch * shape.seq * shape.hidden }],
      }),
  };

  it('the plan counts its terms: the working set grows by exactly them; the note names the plugin', () => {
    const [B, S, H] = [2, 16, 128];
    const tinyMha = model({ vocabSize: 264, hiddenSize: 128, numLayers: 4, numHeads: 4, ffnSize: 512 }, mhaAttention);
    const base: PipelinePlanInput = {
      ...tinyMha,
      stages: 2,
      microbatches: 4,
      microBatchSize: B,
      seqLength: S,
      recompute: 'full',
    };
    const withMha = planPipeline({ ...base, attention: { plugin: mha } });
    const withScratch = planPipeline({ ...base, attention: { plugin: scratch } });
    // the layer is the largest segment of every stage here (vocab 264), so the working set differs by the extra terms
    for (const [a, b] of withMha.stages.map((s, i) => [s, withScratch.stages[i]])) {
      expect(b.workingBytes - a.workingBytes).toBe(4 * (4 + 2) * B * S * H);
      expect(b.checkpointBytes).toBe(a.checkpointBytes);
    }
    // and in full: the layer formula around the plugin's terms, + the largest layer's fresh gradients, + RoPE tables
    const x: ActivationShape = { batch: B, seq: S, hidden: H, heads: 4, ffn: 512, vocab: 264, fusedKernels: true };
    const layer = layerActivation(x, scratch.activation!(attentionShape(x), {}));
    const perLayer = 4 * H * H + 3 * 512 * H + 2 * H; // q, k, v, o + up/gate [2F,H] + down [H,F] + two norms
    expect(withScratch.stages[1].workingBytes).toBe(
      4 * (sumTerms(layer.saved) + sumTerms(layer.gradients) + perLayer + 3.5 * B * S * (H / 4)),
    );
    expect(withScratch.notes[0]).toMatch(/^activations: TensorFlow.js autodiff working set of our scratch layer/);
  });

  it('a plugin without an activation descriptor is a one-line error, not an MHA plan', () => {
    const { activation: _, ...silent } = scratch;
    expect(() =>
      planPipeline({
        ...tiny,
        attention: { plugin: { ...silent, name: 'silent' } },
        stages: 2,
        microbatches: 4,
        microBatchSize: 1,
        seqLength: 8,
      }),
    ).toThrow(
      /^attention plugin "silent" does not describe its activation memory \(no activation\(\) descriptor\), so the planner cannot count its layers$/,
    );
  });
});

describe('memory partitioning (property over random shapes)', () => {
  it('never predicts a higher peak than uniform or parameters', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const cache = new Map<string, ReturnType<typeof model>>();
    for (let i = 0; i < 150; i++) {
      const layers = 2 + rand(23);
      const hidden = [64, 128, 256][rand(3)];
      const att = rand(2) ? lfaAttention : mhaAttention;
      const key = `${layers}:${hidden}:${att.name}`;
      const vocab = [100, 1000, 32000][rand(3)];
      if (!cache.has(key + vocab))
        cache.set(
          key + vocab,
          model({ vocabSize: vocab, hiddenSize: hidden, numLayers: layers, numHeads: 4, ffnSize: 4 * hidden }, att),
        );
      const stages = 1 + rand(Math.min(layers, 8));
      const input: PipelinePlanInput = {
        ...cache.get(key + vocab)!,
        stages,
        microbatches: 1 + rand(16),
        microBatchSize: 1 + rand(4),
        seqLength: [16, 128, 512][rand(3)],
        schedule: rand(2) ? '1f1b' : 'gpipe',
        recompute: rand(2) ? 'full' : 'stage',
        precision: rand(2) ? 'fp32' : 'bf16',
      };
      const memory = planPipeline({ ...input, partition: 'memory' }).peakBytes;
      expect(memory).toBeLessThanOrEqual(planPipeline({ ...input, partition: 'uniform' }).peakBytes);
      expect(memory).toBeLessThanOrEqual(planPipeline({ ...input, partition: 'parameters' }).peakBytes);
    }
  });
});

describe('planSchedules', () => {
  const base = { ...yuan2b, stages: 4, microbatches: 8, microBatchSize: 1, seqLength: 128 };
  it('plans every schedule and picks the fastest that fits the memory cap', () => {
    const all = planSchedules(base);
    expect(all.rows.map((r) => r.schedule)).toEqual([
      '1f1b',
      'gpipe',
      'interleaved-1f1b',
      'zb-h1',
      'zb-h2',
      'zb-v',
      'zb-v-auto',
    ]);
    const row = (name: string) => all.rows.find((r) => r.schedule === name)!;
    expect(row('1f1b').bubbleFraction).toBeCloseTo(3 / 11, 12);
    expect(row('zb-v').bubbleFraction!).toBeLessThan(row('zb-h1').bubbleFraction!);
    expect(row('zb-h1').bubbleFraction!).toBeLessThan(row('1f1b').bubbleFraction!);
    expect(all.choice).toBe('zb-v'); // the shortest simulated step (F = I = W = 1)
    // ZB-V holds each rank's layers in two chunks (rank 0: the first and the last), as many held as 1F1B's stage 0
    const v = row('zb-v').plan!;
    expect(v.stages[0].chunks).toEqual([
      { stage: 0, layers: 3, firstLayer: 0 },
      { stage: 7, layers: 3, firstLayer: 21 },
    ]);
    // a cap between 1F1B's peak and ZB-H2's: the choice is a schedule that fits, never one that does not
    const cap = (row('1f1b').peakBytes! + row('zb-h2').peakBytes!) / 2;
    const capped = planSchedules({ ...base, memoryBytes: cap });
    expect(capped.rows.find((r) => r.schedule === 'zb-h2')!.fits).toBe(false);
    expect(capped.rows.find((r) => r.schedule === capped.choice)!.peakBytes!).toBeLessThanOrEqual(cap);
    expect(capped.choice).not.toBe('1f1b');
    // nothing fits a tiny cap
    expect(planSchedules({ ...base, memoryBytes: 1 }).choice).toBeUndefined();
  });

  it('splits per-rank blocks over virtual stages, and reports what a schedule cannot plan', () => {
    const plan = planPipeline({ ...base, schedule: 'zb-v', partition: [5, 7, 7, 5] });
    expect(plan.blocks).toEqual([3, 4, 4, 3, 2, 3, 3, 2]);
    expect(plan.stages.map((s) => s.layers)).toEqual([5, 7, 7, 5]);
    const odd = planSchedules({ ...base, microbatches: 6, stages: 4 }); // one round of 6: interleaved plans it
    expect(odd.rows.every((r) => r.error === undefined)).toBe(true);
    const tooMany = planSchedules({ ...tiny, stages: 4, microbatches: 4, microBatchSize: 1, seqLength: 16 });
    expect(tooMany.rows.find((r) => r.schedule === 'zb-v')!.error).toMatch(
      /needs 8 virtual stages \(2 per rank\) but the model has 4 layers/,
    );
    expect(() => planPipeline({ ...base, schedule: 'auto' })).toThrow(/use planSchedules/);
  });

  it('zb-v-auto with the v-shape partition: 2P blocks from the pass times, never slower than zb-v; v-shape needs a V', () => {
    const passCosts = { forward: 1, backwardInput: 1.14, backwardWeight: 0.78 };
    const auto = planPipeline({ ...base, schedule: 'zb-v-auto', partition: 'v-shape', passCosts });
    expect(auto.blocks).toHaveLength(8);
    expect(auto.blocks.reduce((a, b) => a + b, 0)).toBe(24);
    const hand = planPipeline({ ...base, schedule: 'zb-v', passCosts });
    expect(auto.makespan).toBeLessThanOrEqual(hand.makespan + 1e-9);
    expect(() => planPipeline({ ...base, schedule: '1f1b', partition: 'v-shape', passCosts })).toThrow(
      /^partition "v-shape" splits a V of 2 chunks per rank, but the schedule has 4 stage\(s\) on 4 rank\(s\)/,
    );
  });
});
