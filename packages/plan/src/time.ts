import { YuanError } from '@yuan/core';
import { plannedOptions, type PlannedAttention } from './plan.js';

/** Inputs of the paper's time model (YUAN 2.0 §3.4, appendix C–D; spec §5.3). Bandwidths in bytes/s, FLOP/s per chip. */
export interface TimeModelInput {
  /** Layers L, hidden H, attention heads, SwiGLU inner size F, sequence S. */
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  seqLength: number;
  /** Parameters of the whole model (`modelParameters` of @yuan/model counted): the gradient and optimizer traffic terms. */
  parameters: number;
  /** The attention plugin and the config's options for it; its `flops` gives the attention block's count (a plugin without one is an error). */
  attention: PlannedAttention;
  /** Micro-batch size B. */
  microBatchSize: number;
  /** Micro-batches per step for the whole job; each data-parallel replica accumulates A = M/D of them. */
  microbatches: number;
  /** Chips N; YUAN's method uses P × D = N, Method 1 T × (P/T) × D = N (the same D and global batch). */
  chips: number;
  /** Pipeline stages P of YUAN's method (Method 2). Method 1 uses P/T stages. */
  pipeline: number;
  /** Tensor-parallel degree T of Method 1 (default 8, one 8-chip node: it reproduces Table 6). */
  tensorParallel?: number;
  /** Achieved FLOP/s per chip F (default 172.8e12: 55.4% of an A100's 312 TFLOP/s bf16 peak, appendix C). */
  flops?: number;
  /** Intra-node chip-to-chip (P2P) peak bandwidth, both directions together, bytes/s. */
  p2pBandwidth: number;
  /** Share of the P2P peak achieved (default 0.85, appendix D). */
  linkEfficiency?: number;
  /** Network bandwidth per NIC, bytes/s (default 24.375e9: 195 Gb/s, appendix D). */
  netBandwidth?: number;
  /** NICs per node n_net (default 2, appendix D: 2 × 195 Gb/s). */
  nics?: number;
}

/** One term of the model. */
export interface TimeTerm {
  /** T0..T4. */
  name: string;
  what: string;
  seconds: number;
  /** seconds / total. */
  share: number;
}

/** One method's prediction. */
export interface MethodTime {
  method: string;
  tensorParallel: number;
  pipeline: number;
  dataParallel: number;
  /** A: micro-batches each replica accumulates per step. */
  accumulation: number;
  terms: TimeTerm[];
  /** Seconds per step. */
  total: number;
}

/** Both methods under the same inputs, and the assumptions used. */
export interface TimePlan {
  method1: MethodTime;
  yuan: MethodTime;
  /** Effective per-direction link bandwidth used for intra-node terms, bytes/s. */
  linkBandwidth: number;
  /** n_net × BW_net, bytes/s. */
  networkBandwidth: number;
  flops: number;
  notes: string[];
}

function int(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new YuanError('usage', `${name} must be an integer >= ${min} (got ${v})`);
  return v;
}

function pos(name: string, v: number): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
    throw new YuanError('usage', `${name} must be a number > 0 (got ${v})`);
  return v;
}

/**
 * The paper's time model of one training step for Method 1 (tensor + pipeline + data parallelism, Eq. 1/2) and YUAN's
 * Method 2 (pipeline + data + optimizer parallelism without tensor parallelism, Eq. 3/4):
 * T0 compute = 4·A·L·(forward FLOPs of a layer for one micro-batch) / (P·T·F), T1 bubble = T0·(P − 1)/A,
 * T2 pipeline p2p = 8·A·B·S·H / BW, T3 tensor-parallel all-reduce = t·L·(T − 1)/(P·T·BW_link)·A·B·S·H (Method 1) or
 * the optimizer-parallel gather/scatter of the stage's parameters 8(D − 1)/D (Method 2), T4 data-parallel gradient
 * reduction 4(D − 1)/D of them. A layer's forward FLOPs are the attention plugin's `flops` (projections and core; its
 * `other` work is left out, as the paper leaves out LFA's convolutions) plus the SwiGLU MLP's 6·B·S·H·F; 4 passes are
 * the forward, its recompute and a backward of twice the forward. t = 2 × the layer's dense FLOPs per token / H² (Eq.
 * 1's 48 for 24·H², Eq. 2's 64 for 32·H²). With projections of 8·H² and F = 4H (YUAN 2.0) this is Eq. 2's
 * 128·A·B·L·S·H²·(1 + S/(8H)). The parameters are the model's own count (Eq. 2's 16LH²(…) form is that count without
 * the final norm). Convention (it reproduces Table 6): BW_link is one direction of the P2P link at `linkEfficiency`,
 * i.e. 0.85 × P2P / 2; Method 1's stage boundaries cross the network, YUAN's stay on the node. One-line errors for
 * non-positive inputs, an attention plugin without `flops`, N not divisible by P, P not by T, M not by D.
 */
export function planTime(input: TimeModelInput): TimePlan {
  const L = int('layers', input.layers, 1);
  const H = int('hidden size', input.hidden, 1);
  const S = int('sequence length', input.seqLength, 1);
  const heads = int('attention heads', input.heads, 1);
  const ffn = int('ffn size', input.ffn, 1);
  const params = pos('parameters', input.parameters);
  const B = int('micro-batch size', input.microBatchSize, 1);
  const N = int('--chips', input.chips, 1);
  const P = int('--pp', input.pipeline, 1);
  const T = int('--tp', input.tensorParallel ?? 8, 1);
  const M = int('--microbatches', input.microbatches, 1);
  if (N % P !== 0) throw new YuanError('usage', `--chips ${N} is not divisible by --pp ${P}`);
  const D = N / P;
  if (P % T !== 0)
    throw new YuanError('usage', `--pp ${P} is not divisible by --tp ${T} (Method 1 uses P/T stages of T chips)`);
  if (M % D !== 0)
    throw new YuanError('usage', `--microbatches ${M} is not divisible by the data-parallel size ${D} = chips/pp`);
  const A = M / D;
  const F = pos('--flops', input.flops ?? 172.8e12);
  const eff = pos('link efficiency', input.linkEfficiency ?? 0.85);
  const link = (eff * pos('--p2p-bw', input.p2pBandwidth)) / 2;
  const net = pos('--nics', input.nics ?? 2) * pos('--net-bw', input.netBandwidth ?? 24.375e9);
  const plugin = input.attention?.plugin;
  if (!plugin) throw new YuanError('usage', 'planTime needs the attention plugin (input.attention.plugin)');
  if (!plugin.flops) {
    throw new YuanError(
      'usage',
      `attention plugin "${plugin.name}" does not describe its FLOPs (no flops() descriptor), so the time model cannot count its layers`,
    );
  }
  const attn = plugin.flops(
    { batch: B, seq: S, hidden: H, heads, headDim: H / heads, fusedKernels: true },
    plannedOptions(input.attention),
  );
  const mlp = 6 * B * S * H * ffn; // SwiGLU: fused up/gate [2F, H] and down [H, F]
  const dense = attn.projections + mlp;
  const layerFlops = dense + attn.core;
  const tpConst = (2 * dense) / (B * S * H * H);
  const absh = A * B * S * H;
  const dpShare = (D - 1) / D;

  const finish = (method: string, t: number, p: number, raw: [string, string, number][]): MethodTime => {
    const total = raw.reduce((a, [, , s]) => a + s, 0);
    return {
      method,
      tensorParallel: t,
      pipeline: p,
      dataParallel: D,
      accumulation: A,
      terms: raw.map(([name, what, seconds]) => ({ name, what, seconds, share: total > 0 ? seconds / total : 0 })),
      total,
    };
  };

  const p1 = P / T;
  const m1T0 = (4 * A * L * layerFlops) / (p1 * T * F);
  const method1 = finish('Method 1: TP + PP + DP', T, p1, [
    ['T0', 'compute', m1T0],
    ['T1', 'pipeline bubble', (m1T0 * (p1 - 1)) / A],
    ['T2', 'pipeline p2p (network)', (8 * absh) / net],
    ['T3', 'tensor-parallel all-reduce (P2P link)', ((tpConst * L * (T - 1)) / (p1 * T * link)) * absh],
    ['T4', 'data-parallel gradient all-reduce (network)', (params * 4 * dpShare) / (p1 * net)],
  ]);
  const m2T0 = (4 * A * L * layerFlops) / (P * F);
  const yuan = finish('YUAN: PP + DP + optimizer parallel', 1, P, [
    ['T0', 'compute', m2T0],
    ['T1', 'pipeline bubble', (m2T0 * (P - 1)) / A],
    ['T2', 'pipeline p2p (P2P link)', (8 * absh) / link],
    ['T3', 'optimizer-parallel gather/scatter (network)', (params * 8 * dpShare) / (P * net)],
    ['T4', 'data-parallel gradient reduction (network)', (params * 4 * dpShare) / (P * net)],
  ]);
  return {
    method1,
    yuan,
    linkBandwidth: link,
    networkBandwidth: net,
    flops: F,
    notes: [
      `compute: 4 passes of a layer's forward per token ${round(dense / (B * S * H * H))}·H² (attention "${plugin.name}" projections ${round(attn.projections / (B * S * H * H))}·H² + SwiGLU ${round(mlp / (B * S * H * H))}·H²) + core ${round(attn.core / (B * S * S * H))}·S·H (YUAN 2.0's Eq. 2: 32·H² + 4·S·H); F = ${(F / 1e12).toFixed(1)} TFLOP/s per chip; Method 1 TP = ${T}, PP = ${p1}; YUAN PP = ${P}; DP = ${D}; A = ${A}`,
      `intra-node link: ${eff} × P2P / 2 per direction = ${(link / 1e9).toFixed(1)} GB/s; network: ${(net / 1e9).toFixed(2)} GB/s per node`,
      ...(attn.other
        ? [
            `not counted, as in the paper: attention "${plugin.name}"'s other forward FLOPs (${((100 * attn.other) / (layerFlops + attn.other)).toFixed(1)}% of the layer's)`,
          ]
        : []),
    ],
  };
}

function round(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}
