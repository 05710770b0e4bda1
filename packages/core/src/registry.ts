import type { ModelAdapterPlugin } from './adapter.js';
import type { AdapterPlugin } from './adapter-plugin.js';
import type { AttentionPlugin } from './attention.js';
import { NotFoundError, YuanError } from './errors.js';
import type { EvaluatorPlugin } from './evaluator.js';
import type { FilterPlugin, FilterPresetPlugin } from './filter.js';
import type { Preset } from './presets.js';
import type { QuantizerPlugin } from './quantizer.js';
import type { TokenizerPlugin } from './tokenizer.js';
import type { WeightFormatPlugin } from './weight-format.js';

/** Everything a plugin of any kind has: its kind, its name, a description and JSON-serialisable default options. */
export interface PluginBase<Kind extends string = string, Options = Record<string, unknown>> {
  readonly kind: Kind;
  readonly name: string;
  readonly description: string;
  /** Default options; a config's `options` object is merged over these. */
  readonly defaults: Options;
  /** Checks merged options and returns them typed; throws a ConfigError naming the bad field. */
  validate?(options: Record<string, unknown>): Options;
}

/**
 * The plugin kinds core defines, by name; `get(kind, name)` returns the kind's interface. A third-party package can
 * add a kind by declaration merging: `declare module '@yuan/core' { interface PluginKinds { myKind: MyPlugin } }`.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface PluginKinds {
  attention: AttentionPlugin<any, any, any>;
  tokenizer: TokenizerPlugin;
  'model-adapter': ModelAdapterPlugin<any>;
  filter: FilterPlugin<any>;
  'filter-preset': FilterPresetPlugin;
  evaluator: EvaluatorPlugin<any>;
  adapter: AdapterPlugin<any, any, any>;
  preset: Preset;
  'weight-format': WeightFormatPlugin<any, any>;
  quantizer: QuantizerPlugin<any>;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

type KindName = keyof PluginKinds & string;
type PluginOf<K extends string> = K extends KindName ? PluginKinds[K] : PluginBase<K, unknown>;

/** A registry of plugins keyed by kind and name; frozen before a run so the run's plan cannot change. */
export class PluginRegistry {
  private readonly plugins = new Map<string, Map<string, PluginBase<string, unknown>>>();
  private readonly sources = new Map<string, string>();
  private frozen = false;

  /**
   * Adds a plugin; `source` names where it came from (a package name or a file path; shown by `yuan plugins list`).
   * Registering the very same object again (one module reached under two specifiers) changes nothing; another plugin
   * under a registered kind:name (naming both sources) or a registration after `freeze()` is an error.
   */
  register<K extends string>(plugin: PluginOf<K> & PluginBase<K, unknown>, source = 'unknown'): this {
    if (typeof plugin?.kind !== 'string' || typeof plugin.name !== 'string' || !plugin.name) {
      throw new YuanError('registry', `cannot register a plugin without a string kind and name (from ${source})`);
    }
    if (this.frozen) {
      throw new YuanError('registry', `cannot register ${plugin.kind}:${plugin.name}: the plugin registry is frozen`);
    }
    let byName = this.plugins.get(plugin.kind);
    if (!byName) {
      byName = new Map();
      this.plugins.set(plugin.kind, byName);
    }
    if (byName.get(plugin.name) === plugin) return this;
    if (byName.has(plugin.name)) {
      throw new YuanError(
        'registry',
        `plugin ${plugin.kind}:${plugin.name} from ${source} is already registered from ${this.sourceOf(plugin.kind, plugin.name)} (registered ${plugin.kind} plugins: ${[...byName.keys()].join(', ')})`,
      );
    }
    byName.set(plugin.name, plugin);
    this.sources.set(`${plugin.kind}:${plugin.name}`, source);
    return this;
  }

  /** True when a plugin of that kind and name is registered. */
  has(kind: string, name: string): boolean {
    return this.plugins.get(kind)?.has(name) ?? false;
  }

  /** The plugin of that kind and name; an unknown one is an error that lists the registered names. */
  get<K extends string>(kind: K, name: string): PluginOf<K> {
    const plugin = this.plugins.get(kind)?.get(name);
    if (!plugin) {
      const known = this.names(kind);
      throw new NotFoundError(
        `unknown ${kind} plugin "${name}" (registered: ${known.length ? known.join(', ') : 'none'})`,
      );
    }
    return plugin as PluginOf<K>;
  }

  /** Names of the registered plugins of a kind, sorted. */
  names(kind: string): string[] {
    return [...(this.plugins.get(kind)?.keys() ?? [])].sort();
  }

  /** All plugins, or those of one kind, sorted by kind then name. */
  list(kind?: string): PluginBase<string, unknown>[] {
    const kinds = kind ? [kind] : [...this.plugins.keys()].sort();
    return kinds.flatMap((k) => this.names(k).map((n) => this.plugins.get(k)!.get(n)!));
  }

  /** Where a registered plugin came from (the `source` given to `register`). */
  sourceOf(kind: string, name: string): string {
    return this.sources.get(`${kind}:${name}`) ?? 'unknown';
  }

  /** Registered plugin kinds, sorted. */
  kinds(): string[] {
    return [...this.plugins.keys()].sort();
  }

  /** Forbids further registration. */
  freeze(): this {
    this.frozen = true;
    return this;
  }

  /** Whether `freeze()` was called. */
  get isFrozen(): boolean {
    return this.frozen;
  }
}
