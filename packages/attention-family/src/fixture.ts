// Test helper (not part of the package's entries): a tiny config, a model of a plugin, full-recompute vs cached logits.
import { resolveConfig, type JsonObject, type YuanConfig } from '@yuan/core';
import { disposeCache, YuanModel, type ModelCache } from '@yuan/model';
import { tf, type TensorAttentionPlugin } from '@yuan/tensor';

/** A tiny config (hidden 32, 4 heads of 8, 2 layers) with this attention. */
export function tinyConfig(name: string, options: JsonObject = {}, model: JsonObject = {}): YuanConfig {
  return resolveConfig({
    model: { vocabSize: 40, hiddenSize: 32, numLayers: 2, numHeads: 4, ffnSize: 64, maxPositions: 128, ...model },
    attention: { name, options },
  });
}

/** A model of that plugin, initialised with a seed. */
export function modelOf(plugin: TensorAttentionPlugin<never>, config: YuanConfig, seed = 1): YuanModel {
  return YuanModel.init(config, plugin as TensorAttentionPlugin<unknown>, seed);
}

/** Logits [T, V] of the whole sequence at once. */
export function fullLogits(model: YuanModel, ids: number[]): number[][] {
  const r = model.forward(tf.tensor2d([ids], undefined, 'int32'));
  const out = (r.logits.arraySync() as number[][][])[0];
  r.logits.dispose();
  return out;
}

/** Logits [T, V]: the first `prefill` tokens at once, then one token per call with the cache; the cache of every call. */
export function cachedLogits(
  model: YuanModel,
  ids: number[],
  prefill: number,
  onCache?: (cache: ModelCache) => void,
): number[][] {
  let cache: ModelCache | undefined;
  const rows: number[][] = [];
  for (let t = 0; t < ids.length;) {
    const n = t === 0 ? prefill : 1;
    const r = model.forward(tf.tensor2d([ids.slice(t, t + n)], undefined, 'int32'), { cache, useCache: true });
    disposeCache(cache, r.cache);
    cache = r.cache!;
    onCache?.(cache);
    rows.push(...(r.logits.arraySync() as number[][][])[0]);
    r.logits.dispose();
    t += n;
  }
  disposeCache(cache);
  return rows;
}

/** Largest absolute difference of two equally shaped arrays of rows. */
export function maxDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j])))));
  return m;
}
