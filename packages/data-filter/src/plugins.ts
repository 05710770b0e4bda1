import {
  PluginRegistry,
  registerModule,
  registerPluginModules,
  type FilterPlugin,
  type FilterPresetPlugin,
} from '@yuan/core';
import { BUILTIN_FILTERS } from './filters/index.js';
import { FILTER_PRESETS } from './presets.js';

/** This package's plugins: the built-in filters (kind `filter`) and presets (kind `filter-preset`). */
export const BUILTIN_PLUGINS = [...BUILTIN_FILTERS, ...FILTER_PRESETS];

/**
 * A frozen registry for a filter run: this package's filters and presets (its `plugins`, registered as every plugin module is:
 * `registerModule` of @yuan/core), `extra` plugin objects and the `plugins` of `modules` (paths or package names).
 * Errors: a module that cannot be loaded or a duplicate name.
 */
export async function buildFilterRegistry(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  extra: readonly (FilterPlugin<any> | FilterPresetPlugin)[] = [],
  modules: readonly string[] = [],
): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  registerModule(registry, { plugins: BUILTIN_PLUGINS }, '@yuan/data-filter');
  for (const p of extra) registry.register(p, 'runFilter options');
  await registerPluginModules(registry, modules);
  return registry.freeze();
}
