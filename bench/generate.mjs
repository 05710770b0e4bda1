// Generation speed with the KV + LF caches against full recompute (--no-cache), same model, prompt and tokens.
// Usage: node bench/generate.mjs [--preset tiny-lfa] [--tokens 64] [--prompt 16] [--backend wasm]
// --smoke: 8 new tokens after a 4-token prompt, to check that the benchmark runs (the test suite does this).
import { parseArgs } from 'node:util';
import { getPreset, resolveConfig } from '@yuan/core';
import { generate, YuanModel } from '@yuan/model';
import { initBackend } from '@yuan/tensor';
import { attentionNamed } from './attention-plugins.mjs';

const smoke = process.argv.includes('--smoke');
const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'tiny-lfa' },
    tokens: { type: 'string', default: smoke ? '8' : '64' },
    prompt: { type: 'string', default: smoke ? '4' : '16' },
    backend: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const backend = await initBackend(values.backend);
const config = resolveConfig(getPreset(values.preset).config);
const model = YuanModel.init(config, attentionNamed(config.attention.name), 0);
const prompt = Array.from({ length: Number(values.prompt) }, (_, i) => (i * 31) % config.model.vocabSize);
const maxNewTokens = Number(values.tokens);

function time(useCache) {
  generate(model, prompt, { maxNewTokens: 4, useCache }); // warm-up
  const t0 = performance.now();
  const ids = generate(model, prompt, { maxNewTokens, useCache });
  const s = (performance.now() - t0) / 1000;
  return { ids, tokensPerSecond: ids.length / s };
}

const cached = time(true);
const full = time(false);
if (cached.ids.join() !== full.ids.join()) throw new Error('cache and no-cache generations differ');
console.log(
  `preset ${values.preset}, backend ${backend.name}, prompt ${prompt.length} tokens, ${maxNewTokens} new tokens`,
);
console.log(`with cache   ${cached.tokensPerSecond.toFixed(1)} tokens/s`);
console.log(`no cache     ${full.tokensPerSecond.toFixed(1)} tokens/s`);
console.log(`ratio        ${(cached.tokensPerSecond / full.tokensPerSecond).toFixed(2)}x (cache / no-cache)`);
