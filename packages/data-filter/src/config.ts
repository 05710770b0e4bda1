import path from 'node:path';
import {
  ConfigError,
  NotFoundError,
  arrayOf,
  bool,
  num,
  obj,
  optional,
  readConfigFile as readCoreConfigFile,
  record,
  str,
  type JsonObject,
  type PluginRegistry,
} from '@yuan/core';
import type { FilterPreset, FilterStep } from './presets.js';

/** A resolved filter run configuration. */
export interface FilterConfig {
  /** Dotted path of the text field. Default `text`. */
  textField: string;
  /** Dotted path of the id field; records without one get `FILE:LINE`. Default `id`. */
  idField: string;
  /** Lines longer than this many bytes are rejected (streamed, never held in memory). Default 16 MiB. */
  maxLineBytes: number;
  /** Add `lang` and `lang_score` fields to kept records. Default false. */
  annotate: boolean;
  /** Examples kept in the report per drop reason. Default 3. */
  examples: number;
  /** Modules (paths relative to the config file, or package names) that export extra filter plugins. */
  plugins: string[];
  /** The pipeline, in order. */
  filters: FilterStep[];
}

/** Defaults of the run-level fields. */
export const CONFIG_DEFAULTS = {
  textField: 'text',
  idField: 'id',
  maxLineBytes: 16 * 1024 * 1024,
  annotate: false,
  examples: 3,
};

const stepSchema = {
  expected: 'a filter name or an object with fields name, label, options',
  parse(value: unknown, p: string): FilterStep {
    if (typeof value === 'string') return { name: value };
    return obj({ name: str(), label: optional(str()), options: optional(record()) }).parse(value, p);
  },
};

const fileSchema = obj({
  preset: optional(str()),
  textField: optional(str()),
  idField: optional(str()),
  maxLineBytes: optional(num({ int: true, min: 1024 })),
  annotate: optional(bool()),
  examples: optional(num({ int: true, min: 0 })),
  plugins: optional(arrayOf(str())),
  filters: optional(arrayOf(stepSchema)),
  options: optional(record()),
});

/** The raw config layer read from a file (YAML or JSON), with relative `plugins` paths resolved against its folder. */
export function readConfigFile(file: string): JsonObject {
  const layer = readCoreConfigFile(file);
  if (Array.isArray(layer.plugins)) {
    layer.plugins = layer.plugins.map((p) =>
      typeof p === 'string' && (p.startsWith('.') || p.startsWith('/')) ? path.resolve(path.dirname(file), p) : p,
    );
  }
  return layer;
}

/**
 * The filter preset of that name from `registry` (kind `filter-preset`: this package's presets and those of any plugin
 * module the run loads). Errors: NotFoundError for an unknown name, listing the registered presets.
 */
export function getFilterPreset(name: string, registry: PluginRegistry): FilterPreset {
  if (!registry.has('filter-preset', name))
    throw new NotFoundError(
      `unknown filter preset "${name}" (presets: ${registry.names('filter-preset').join(', ') || 'none registered'})`,
    );
  return registry.get('filter-preset', name);
}

/**
 * Resolves a config layer (from a file, with any --set applied) over a preset looked up in `registry`: `filters`
 * replaces the preset's list, `options` (label or name → options) is merged over the options of matching steps.
 * Errors: ConfigError naming the bad field, NotFoundError for an unknown preset.
 */
export function resolveFilterConfig(
  layer: JsonObject,
  registry: PluginRegistry,
  fallbackPreset = 'yuan-zh-en',
): FilterConfig {
  const parsed = fileSchema.parse(layer, '');
  let steps: FilterStep[];
  if (parsed.filters) steps = parsed.filters.map((s) => ({ ...s }));
  else
    steps = getFilterPreset(parsed.preset ?? fallbackPreset, registry).filters.map((s) => ({
      ...s,
      options: { ...(s.options ?? {}) },
    }));
  const labels = new Set<string>();
  for (const s of steps) {
    const label = s.label ?? s.name;
    if (labels.has(label))
      throw new ConfigError(`invalid config: two filters are labelled "${label}"; give one a distinct label`);
    labels.add(label);
  }
  for (const [key, opts] of Object.entries(parsed.options ?? {})) {
    const step = steps.find((s) => (s.label ?? s.name) === key);
    if (!step)
      throw new ConfigError(
        `invalid config: options.${key} names no filter of the pipeline (filters: ${[...labels].join(', ')})`,
      );
    record().parse(opts, `options.${key}`);
    step.options = { ...(step.options ?? {}), ...(opts as JsonObject) };
  }
  return {
    textField: parsed.textField ?? CONFIG_DEFAULTS.textField,
    idField: parsed.idField ?? CONFIG_DEFAULTS.idField,
    maxLineBytes: parsed.maxLineBytes ?? CONFIG_DEFAULTS.maxLineBytes,
    annotate: parsed.annotate ?? CONFIG_DEFAULTS.annotate,
    examples: parsed.examples ?? CONFIG_DEFAULTS.examples,
    plugins: parsed.plugins ?? [],
    filters: steps,
  };
}
