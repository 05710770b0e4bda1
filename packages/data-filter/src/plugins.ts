import { PluginRegistry, registerPluginModules, type FilterPlugin } from '@yuan/core';
import { BUILTIN_FILTERS } from './filters/index.js';

/**
 * A frozen registry for a filter run: `base` (the CLI's registry, with whatever `--plugin` loaded) or a new one with
 * the built-in filters, plus `extra` plugins and the plugins exported by `modules` (paths or package names, loaded
 * the same way as every yuan plugin module). Errors: a module that cannot be loaded or a duplicate name.
 */
export async function buildFilterRegistry(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  extra: readonly FilterPlugin<any>[] = [],
  modules: readonly string[] = [],
  base?: PluginRegistry,
): Promise<PluginRegistry> {
  let registry = base;
  if (!registry) {
    registry = new PluginRegistry();
    for (const p of BUILTIN_FILTERS) registry.register(p, '@yuan/data-filter');
  }
  for (const p of extra) registry.register(p, 'runFilter options');
  await registerPluginModules(registry, modules);
  return registry.freeze();
}
