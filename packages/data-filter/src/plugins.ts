import { PluginRegistry, registerPluginModules, type FilterPlugin } from '@yuan/core';
import { BUILTIN_FILTERS } from './filters/index.js';

/**
 * A frozen registry for a filter run: the built-in filters, `extra` plugins and the plugins exported by `modules`
 * (paths or package names, loaded the same way as every yuan plugin module: `registerPluginModules` of @yuan/core).
 * Errors: a module that cannot be loaded or a duplicate name.
 */
export async function buildFilterRegistry(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  extra: readonly FilterPlugin<any>[] = [],
  modules: readonly string[] = [],
): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  for (const p of BUILTIN_FILTERS) registry.register(p, '@yuan/data-filter');
  for (const p of extra) registry.register(p, 'runFilter options');
  await registerPluginModules(registry, modules);
  return registry.freeze();
}
