/*
 * A deliberately naive, independent YUAN 2.0 forward pass in plain JavaScript, written from the Hugging Face
 * layout (q_proj/k_proj concatenated and split per head, Conv2d with padding (1,0) keeping the first s outputs,
 * down(gate(x) * silu(up(x)))). It shares no code with the model, so tests can compare the two on any checkpoint.
 */
export type Weights = Map<string, { shape: number[]; data: Float32Array }>;

export interface RefConfig {
  hidden: number;
  heads: number;
  layers: number;
  vocab: number;
  ffn: number;
  eps: number;
}

type Vec = Float64Array;

function get(w: Weights, name: string) {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing ${name}`);
  return t;
}

/** y = W x for W [out, in] (row-major). */
function matvec(w: { shape: number[]; data: Float32Array }, x: Vec, col = 0, stride = 1): Vec {
  const [out, inn] = w.shape;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inn; i++) s += w.data[(o * inn + i) * stride + col] * x[i];
    y[o] = s;
  }
  return y;
}

function rms(x: Vec, w: Float32Array, eps: number): Vec {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** torch Conv2d(kernel (2,1), padding (1,0)) over time, first s outputs: out_t = W0·x_{t−1} + W1·x_t + b. */
function conv(w: { shape: number[]; data: Float32Array }, b: Float32Array, xs: Vec[]): Vec[] {
  const [out, inn, k] = w.shape;
  const padded = [new Float64Array(inn), ...xs, new Float64Array(inn)];
  const ys: Vec[] = [];
  for (let t = 0; t < xs.length; t++) {
    const y = new Float64Array(out).map((_, o) => b[o]);
    for (let kk = 0; kk < k; kk++) {
      const xk = padded[t + kk];
      for (let o = 0; o < out; o++) {
        let s = 0;
        for (let i = 0; i < inn; i++) s += w.data[(o * inn + i) * k + kk] * xk[i];
        y[o] += s;
      }
    }
    ys.push(y);
  }
  return ys;
}

function rope(x: Vec, pos: number, d: number): Vec {
  const half = d / 2;
  const y = new Float64Array(d);
  for (let i = 0; i < half; i++) {
    const th = pos / Math.pow(10000, (2 * i) / d);
    y[i] = x[i] * Math.cos(th) - x[i + half] * Math.sin(th);
    y[i + half] = x[i + half] * Math.cos(th) + x[i] * Math.sin(th);
  }
  return y;
}

/** Logits [T][vocab] of one sequence. */
export function referenceLogits(w: Weights, c: RefConfig, ids: number[]): number[][] {
  const d = c.hidden / c.heads;
  const emb = get(w, 'model.embed_tokens.weight');
  let hs: Vec[] = ids.map((id) => Float64Array.from(emb.data.subarray(id * c.hidden, (id + 1) * c.hidden)));
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}.`;
    const xs = hs.map((h) => rms(h, get(w, `${p}input_layernorm.weight`).data, c.eps));
    const u = conv(get(w, `${p}self_attn.lf_gate.conv1.weight`), get(w, `${p}self_attn.lf_gate.conv1.bias`).data, xs);
    const v2 = conv(get(w, `${p}self_attn.lf_gate.conv2.weight`), get(w, `${p}self_attn.lf_gate.conv2.bias`).data, u);
    const zs = v2.map((v, t) =>
      rms(
        v.map((a, i) => a + xs[t][i]),
        get(w, `${p}self_attn.lf_gate.output_layernorm.weight`).data,
        c.eps,
      ),
    );
    const qs: Vec[][] = [];
    const ks: Vec[][] = [];
    const vs: Vec[][] = [];
    zs.forEach((z, t) => {
      const qk = new Float64Array([
        ...matvec(get(w, `${p}self_attn.q_proj.weight`), z),
        ...matvec(get(w, `${p}self_attn.k_proj.weight`), z),
      ]);
      const val = matvec(get(w, `${p}self_attn.v_proj.weight`), xs[t]);
      qs.push([]);
      ks.push([]);
      vs.push([]);
      for (let h = 0; h < c.heads; h++) {
        qs[t].push(rope(qk.subarray(h * 2 * d, h * 2 * d + d), t, d));
        ks[t].push(rope(qk.subarray(h * 2 * d + d, (h + 1) * 2 * d), t, d));
        vs[t].push(val.subarray(h * d, (h + 1) * d));
      }
    });
    const attn = hs.map((_, t) => {
      const o = new Float64Array(c.hidden);
      for (let h = 0; h < c.heads; h++) {
        const scores = Array.from(
          { length: t + 1 },
          (_, j) => qs[t][h].reduce((s, q, i) => s + q * ks[j][h][i], 0) / Math.sqrt(d),
        );
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let i = 0; i < d; i++) o[h * d + i] += (e[j] / z) * vs[j][h][i];
      }
      return matvec(get(w, `${p}self_attn.o_proj.weight`), o);
    });
    hs = hs.map((h, t) => h.map((v, i) => v + attn[t][i]));
    hs = hs.map((h) => {
      const x = rms(h, get(w, `${p}post_attention_layernorm.weight`).data, c.eps);
      const up = matvec(get(w, `${p}mlp.up_proj.weight`), x);
      const gate = matvec(get(w, `${p}mlp.gate_proj.weight`), x);
      const act = gate.map((g, i) => g * (up[i] / (1 + Math.exp(-up[i]))));
      const down = matvec(get(w, `${p}mlp.down_proj.weight`), act);
      return h.map((v, i) => v + down[i]);
    });
  }
  return hs.map((h) => Array.from(matvec(emb, rms(h, get(w, 'model.norm.weight').data, c.eps))));
}

/** Greedy continuation by full recompute (argmax, first index on ties). */
export function referenceGreedy(w: Weights, c: RefConfig, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const last = referenceLogits(w, c, seq).at(-1)!;
    seq.push(last.indexOf(Math.max(...last)));
  }
  return seq.slice(prompt.length);
}
