import { ConfigError } from './errors.js';

/** A plain JSON object. */
export type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `over` onto `base` (objects merge, everything else replaces); neither input is modified. */
export function deepMerge<T extends JsonObject>(base: T, over: JsonObject): T {
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
  const value = parseSetValue(assignment.slice(eq + 1));
  const out = structuredClone(config);
  let node: JsonObject = out;
  for (const key of path.slice(0, -1)) {
    if (node[key] === undefined) node[key] = {};
    if (!isObject(node[key])) {
      throw new ConfigError(`invalid --set "${assignment}": ${key} is ${JSON.stringify(node[key])}, not an object`);
    }
    node = node[key] as JsonObject;
  }
  node[path[path.length - 1]] = value;
  return out;
}
