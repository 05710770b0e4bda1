import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { YuanError } from './errors.js';
import { PluginRegistry, type PluginBase } from './registry.js';

/** The one export a plugin module declares its plugins with: `export const plugins = [...]`. */
export const PLUGINS_EXPORT = 'plugins';

function isPlugin(v: unknown): v is PluginBase<string, unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as PluginBase).kind === 'string' &&
    typeof (v as PluginBase).name === 'string' &&
    typeof (v as PluginBase).description === 'string' &&
    'defaults' in (v as object)
  );
}

/**
 * The plugins a module declares: its `plugins` export, an array of plugin objects (a string `kind`, `name` and
 * `description`, and `defaults`). Nothing else a module exports is looked at. Errors (ConfigError, naming `where`): no
 * `plugins` export, one that is not an array or is empty, or an entry that is not a plugin (naming its index).
 */
export function modulePlugins(mod: unknown, where: string): PluginBase<string, unknown>[] {
  const list = mod && typeof mod === 'object' ? (mod as Record<string, unknown>)[PLUGINS_EXPORT] : undefined;
  if (list === undefined)
    throw new YuanError(
      'config',
      `plugin module ${where} has no \`${PLUGINS_EXPORT}\` export (declare them as: export const ${PLUGINS_EXPORT} = [plugin, ...])`,
    );
  if (!Array.isArray(list))
    throw new YuanError(
      'config',
      `plugin module ${where}: its \`${PLUGINS_EXPORT}\` export is ${typeof list}, not an array of plugins`,
    );
  if (list.length === 0)
    throw new YuanError(
      'config',
      `plugin module ${where} declares no plugin (its \`${PLUGINS_EXPORT}\` array is empty)`,
    );
  list.forEach((p, i) => {
    if (!isPlugin(p))
      throw new YuanError(
        'config',
        `plugin module ${where}: ${PLUGINS_EXPORT}[${i}] is not a plugin (an object with a string kind, name and description, and defaults)`,
      );
  });
  return list as PluginBase<string, unknown>[];
}

/**
 * Registers the plugins `mod` declares (its `plugins` export, see `modulePlugins`) under `source` (a package name or an
 * absolute path; shown by `yuan plugins list`). This is how every plugin enters a registry, built-in or not: the
 * loader calls it for each module it imports, and a package's own default registry calls it with its own entry.
 * Errors: those of `modulePlugins` and of `PluginRegistry.register` (a duplicate kind:name, a frozen registry).
 */
export function registerModule(registry: PluginRegistry, mod: unknown, source: string): PluginRegistry {
  for (const p of modulePlugins(mod, `"${source}"`)) registry.register(p as never, source);
  return registry;
}

/**
 * A frozen registry of one module's plugins (`registerModule`): what a library function that looks a name up uses when
 * its caller gives no registry, so the lookup is the same one the CLI's registry makes.
 */
export function moduleRegistry(mod: unknown, source: string): PluginRegistry {
  return registerModule(new PluginRegistry(), mod, source).freeze();
}

function entryOfPackage(dir: string): string | undefined {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    exports?: unknown;
    module?: string;
    main?: string;
  };
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
  if (spec.startsWith('file:')) spec = fileURLToPath(spec);
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
    throw new YuanError(
      'config',
      `plugin package "${spec}" is not installed (looked in node_modules from ${baseDir} upwards)`,
    );
  }
}

async function importModule(spec: string, baseDir: string): Promise<unknown> {
  const file = resolvePluginModule(spec, baseDir);
  try {
    return await import(pathToFileURL(file).href);
  } catch (e) {
    throw new YuanError(
      'config',
      `cannot load plugin module "${spec}" (${file}): ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

/**
 * Imports a plugin module (a package name, a path or a `file:` URL; see `resolvePluginModule`) and returns the plugins
 * it declares in its `plugins` export (`modulePlugins`). Errors: a module that cannot be found or loaded, or whose
 * `plugins` export is missing or malformed, is a one-line ConfigError naming it.
 */
export async function loadPluginModule(spec: string, baseDir = process.cwd()): Promise<PluginBase<string, unknown>[]> {
  return modulePlugins(await importModule(spec, baseDir), `"${spec}"`);
}

/** The source a module specifier's plugins are registered under: an absolute path for a path or URL, else the package name. */
export function pluginSource(spec: string, baseDir = process.cwd()): string {
  if (spec.startsWith('file:')) return fileURLToPath(spec);
  return spec.startsWith('.') || path.isAbsolute(spec) ? path.resolve(baseDir, spec) : spec;
}

/**
 * Imports plugin modules and registers each one's `plugins` (`registerModule`) under its source (`pluginSource`).
 * Errors: those of `loadPluginModule` and `registerModule`, one line each, naming the module.
 */
export async function registerPluginModules(
  registry: PluginRegistry,
  specs: readonly string[],
  baseDir = process.cwd(),
): Promise<PluginRegistry> {
  for (const spec of specs) registerModule(registry, await importModule(spec, baseDir), pluginSource(spec, baseDir));
  return registry;
}
