import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { YuanError } from './errors.js';
import type { PluginBase, PluginRegistry } from './registry.js';

function isPlugin(v: unknown): v is PluginBase<string, unknown> {
  return typeof v === 'object' && v !== null && typeof (v as PluginBase).kind === 'string' && typeof (v as PluginBase).name === 'string' && 'defaults' in (v as object);
}

function entryOfPackage(dir: string): string | undefined {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { exports?: unknown; module?: string; main?: string };
  let e: unknown = pkg.exports;
  if (e && typeof e === 'object' && '.' in (e as object)) e = (e as Record<string, unknown>)['.'];
  while (e && typeof e === 'object') {
    const c = e as Record<string, unknown>;
    e = c.import ?? c.node ?? c.default ?? c.require;
  }
  const rel = (typeof e === 'string' ? e : undefined) ?? pkg.module ?? pkg.main ?? 'index.js';
  const file = path.join(dir, rel);
  return existsSync(file) ? file : undefined;
}

/**
 * The file a plugin module specifier names: a path (absolute, or relative to `baseDir`), or a package name resolved
 * from `baseDir` upwards through node_modules (the user's project), then from yuan's own installation.
 */
export function resolvePluginModule(spec: string, baseDir: string): string {
  if (spec.startsWith('.') || path.isAbsolute(spec)) {
    const p = path.resolve(baseDir, spec);
    if (!existsSync(p)) throw new YuanError('config', `plugin module not found: ${p}`);
    if (existsSync(path.join(p, 'package.json'))) {
      const entry = entryOfPackage(p);
      if (!entry) throw new YuanError('config', `plugin package ${p} has no entry file (package.json exports/main)`);
      return entry;
    }
    return p;
  }
  const [scopeOrName, maybeName] = spec.split('/');
  const name = scopeOrName.startsWith('@') ? `${scopeOrName}/${maybeName}` : scopeOrName;
  const sub = spec.slice(name.length);
  for (let dir = path.resolve(baseDir); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(pkgDir, 'package.json'))) {
      if (sub) return path.join(pkgDir, sub);
      const entry = entryOfPackage(pkgDir);
      if (entry) return entry;
    }
    if (path.dirname(dir) === dir) break;
  }
  try {
    return createRequire(import.meta.url).resolve(spec);
  } catch {
    throw new YuanError('config', `plugin package "${spec}" is not installed (looked in node_modules from ${baseDir} upwards)`);
  }
}

/**
 * Imports a plugin module and returns the plugins it exports: every exported plugin object (an object with a string
 * `kind` and `name` and `defaults`), or arrays of them (such as an exported `plugins` list). Errors: a module that cannot
 * be found or loaded, or that exports no plugin, is a one-line ConfigError naming it.
 */
export async function loadPluginModule(spec: string, baseDir = process.cwd()): Promise<PluginBase<string, unknown>[]> {
  const file = resolvePluginModule(spec, baseDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new YuanError('config', `cannot load plugin module "${spec}" (${file}): ${(e as Error).message.split('\n')[0]}`);
  }
  const found: PluginBase<string, unknown>[] = [];
  for (const value of Object.values(mod)) {
    for (const v of Array.isArray(value) ? value : [value]) if (isPlugin(v) && !found.includes(v)) found.push(v);
  }
  if (found.length === 0) throw new YuanError('config', `plugin module "${spec}" exports no plugin (objects with kind, name and defaults, or a plugins array)`);
  return found;
}

/** Loads plugin modules (see `loadPluginModule`) and registers their plugins with the module specifier as their source. */
export async function registerPluginModules(registry: PluginRegistry, specs: readonly string[], baseDir = process.cwd()): Promise<PluginRegistry> {
  for (const spec of specs) {
    for (const p of await loadPluginModule(spec, baseDir)) registry.register(p as never, spec.startsWith('.') || path.isAbsolute(spec) ? path.resolve(baseDir, spec) : spec);
  }
  return registry;
}
