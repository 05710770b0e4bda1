import { pathToFileURL } from 'node:url';
import { PluginRegistry, YuanError, type FilterPlugin } from '@yuan/core';
import { BUILTIN_FILTERS } from './filters/index.js';

function isFilterPlugin(v: unknown): v is FilterPlugin {
  return typeof v === 'object' && v !== null && (v as FilterPlugin).kind === 'filter' && typeof (v as FilterPlugin).create === 'function';
}

/** Loads a module (a path or a package name) and returns the filter plugins it exports (any export, or arrays of them). */
export async function loadPluginModule(spec: string): Promise<FilterPlugin[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec.startsWith('/') ? pathToFileURL(spec).href : spec)) as Record<string, unknown>;
  } catch (e) {
    throw new YuanError('config', `cannot load filter plugin module "${spec}": ${(e as Error).message.split('\n')[0]}`);
  }
  const found: FilterPlugin[] = [];
  for (const value of Object.values(mod)) {
    for (const v of Array.isArray(value) ? value : [value]) if (isFilterPlugin(v) && !found.includes(v)) found.push(v);
  }
  if (found.length === 0) throw new YuanError('config', `module "${spec}" exports no filter plugin (objects with kind "filter" and a create function)`);
  return found;
}

/** A frozen registry with the built-in filters, `extra` plugins and those exported by the `modules`. */
export async function buildFilterRegistry(extra: readonly FilterPlugin<any>[] = [], modules: readonly string[] = []): Promise<PluginRegistry> {
  const registry = new PluginRegistry();
  for (const p of BUILTIN_FILTERS) registry.register(p);
  for (const p of extra) registry.register(p);
  for (const m of modules) for (const p of await loadPluginModule(m)) registry.register(p);
  return registry.freeze();
}
