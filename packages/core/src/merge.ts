import { ConfigError } from './errors.js';

/** A plain JSON object. */
export type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys a config may not use: assigning them would reach an object's prototype (prototype pollution). */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The dotted path of the first forbidden key in a JSON value (own keys, at any depth), or undefined. */
function forbiddenKeyPath(value: unknown, at: string[] = []): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const here = Array.isArray(value) ? [...at.slice(0, -1), `${at[at.length - 1] ?? ''}[${k}]`] : [...at, k];
    if (!Array.isArray(value) && FORBIDDEN_KEYS.has(k)) return here.join('.');
    const deeper = forbiddenKeyPath(v, here);
    if (deeper) return deeper;
  }
  return undefined;
}

/**
 * Throws a one-line ConfigError if a config layer uses `__proto__`, `constructor` or `prototype` as a key at any depth;
 * `where` names the source in the message (e.g. the file).
 */
export function assertSafeConfigKeys(layer: unknown, where: string): void {
  const bad = forbiddenKeyPath(layer);
  if (bad)
    throw new ConfigError(
      `${where}: "${bad}" is not allowed (__proto__, constructor and prototype cannot be config keys)`,
    );
}

/** Deep-merges `over` onto `base` (objects merge, everything else replaces); neither input is modified. */
export function deepMerge<T extends JsonObject>(base: T, over: JsonObject): T {
  assertSafeConfigKeys(over, 'invalid config');
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as JsonObject, v) : structuredClone(v);
  }
  return out as T;
}

/** Parses a `--set` value: JSON numbers, booleans, null, arrays and objects as such, anything else as a string. */
export function parseSetValue(raw: string): unknown {
  const t = raw.trim();
  if (t === '') return '';
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t) || /^(true|false|null)$/.test(t) || /^[[{"]/.test(t)) {
    try {
      return JSON.parse(t);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** Applies one `a.b.c=value` assignment to a copy of `config`; a malformed assignment is a ConfigError. */
export function applySet(config: JsonObject, assignment: string): JsonObject {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`invalid --set "${assignment}": expected key.path=value`);
  const path = assignment.slice(0, eq).trim().split('.');
  if (path.some((p) => p === '')) throw new ConfigError(`invalid --set "${assignment}": empty segment in key path`);
  const bad = path.find((p) => FORBIDDEN_KEYS.has(p));
  if (bad)
    throw new ConfigError(
      `invalid --set "${assignment}": "${bad}" is not allowed (__proto__, constructor and prototype cannot be config keys)`,
    );
  const value = parseSetValue(assignment.slice(eq + 1));
  assertSafeConfigKeys(value, `invalid --set "${assignment}"`);
  const out = structuredClone(config);
  let node: JsonObject = out;
  for (const key of path.slice(0, -1)) {
    if (!Object.hasOwn(node, key)) node[key] = {};
    if (!isObject(node[key])) {
      throw new ConfigError(`invalid --set "${assignment}": ${key} is ${JSON.stringify(node[key])}, not an object`);
    }
    node = node[key] as JsonObject;
  }
  node[path[path.length - 1]] = value;
  return out;
}
