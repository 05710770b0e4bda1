import { countParameters, getPreset, resolveConfig, YuanError, type PluginRegistry } from '@yuan/core';
import { attentionLookup, modelParameters } from '@yuan/model';
import type { Command } from '../command.js';
import { CONFIG_OPTIONS, loadConfig, loadRegistry } from '../context.js';

function describe(registry: PluginRegistry, name: string) {
  const config = resolveConfig(getPreset(name, registry).config);
  return {
    config,
    parameters: countParameters(modelParameters(config, attentionLookup(registry)(config.attention.name))),
  };
}

/** `yuan presets list`: every registered preset (core's and those of loaded plugin packages) with its shape and parameter count. */
export const presetsList: Command = {
  path: ['presets', 'list'],
  summary: 'list the presets (built in and from --plugin packages) with their shapes and parameter counts',
  usage: 'yuan presets list [--plugin PKG|PATH ...] [--json]',
  options: { json: { type: 'boolean' }, plugin: { type: 'string', multiple: true } },
  async run(values, _pos, io) {
    const registry = await loadRegistry(values);
    const rows = registry.list('preset').map((p) => ({
      name: p.name,
      description: p.description,
      source: registry.sourceOf('preset', p.name),
      ...describe(registry, p.name),
    }));
    if (values.json) {
      io.out(
        JSON.stringify(
          rows.map((r) => ({
            name: r.name,
            source: r.source,
            parameters: r.parameters,
            model: r.config.model,
            attention: r.config.attention,
          })),
          null,
          2,
        ),
      );
      return;
    }
    io.out(
      `${'preset'.padEnd(12)} ${'attention'.padEnd(9)} ${'layers'.padStart(6)} ${'hidden'.padStart(6)} ${'heads'.padStart(5)} ${'ffn'.padStart(6)} ${'vocab'.padStart(7)} ${'parameters'.padStart(15)}`,
    );
    for (const r of rows) {
      const m = r.config.model;
      io.out(
        `${r.name.padEnd(12)} ${r.config.attention.name.padEnd(9)} ${String(m.numLayers).padStart(6)} ${String(m.hiddenSize).padStart(6)} ${String(m.numHeads).padStart(5)} ${String(m.ffnSize).padStart(6)} ${String(m.vocabSize).padStart(7)} ${r.parameters.toLocaleString('en-US').padStart(15)}`,
      );
    }
  },
};

/** `yuan presets show NAME`: the fully resolved config of a preset (with any --set) and its parameter count. */
export const presetsShow: Command = {
  path: ['presets', 'show'],
  summary: 'show a preset resolved (with --config/--set applied) and its parameter count',
  usage: 'yuan presets show NAME [--config F] [--set k=v ...] [--json]',
  options: { ...CONFIG_OPTIONS, json: { type: 'boolean' } },
  async run(values, positionals, io) {
    const name = positionals[0] ?? (values.preset as string | undefined);
    if (!name) throw new YuanError('usage', `missing preset NAME\nusage: ${presetsShow.usage}`);
    const config = await loadConfig({ ...values, preset: name });
    const registry = await loadRegistry(values, config);
    const parameters = countParameters(modelParameters(config, attentionLookup(registry)(config.attention.name)));
    if (values.json) {
      io.out(JSON.stringify({ config, parameters }, null, 2));
      return;
    }
    io.out(`${name}: ${getPreset(name, registry).description}`);
    io.out(`parameters: ${parameters.toLocaleString('en-US')}`);
    io.out(JSON.stringify(config, null, 2));
  },
};
