import { PluginRegistry, registerModule, registerPluginModules, type FilterPlugin } from '@yuan/core';
import { BUILTIN_FILTERS } from './filters/index.js';

/**
 * A frozen registry for a filter run: this package's filters (its `plugins`, registered as every plugin module is:
 * `registerModule` of @yuan/core), `extra` plugin objects and the `plugins` of `modules` (paths or package names).
 * Errors: a module that cannot be loaded or a duplicate name.
 */
export async function buildFilterRegistry(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  extra: readonly FilterPlugin<any>[] = [],
  modules: readonly string[] = [],
): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  registerModule(registry, { plugins: BUILTIN_FILTERS }, '@yuan/data-filter');
  for (const p of extra) registry.register(p, 'runFilter options');
  await registerPluginModules(registry, modules);
  return registry.freeze();
}
