import { ConfigError } from './errors.js';

/** A validator for one config value: returns the checked value or a description of what was expected. */
export interface Schema<T> {
  /** What is expected, in words, for error messages. */
  readonly expected: string;
  /** Checks `value` found at `path`; throws a ConfigError naming the path, the value and the expectation. */
  parse(value: unknown, path: string): T;
}

function fail(path: string, value: unknown, expected: string): never {
  throw new ConfigError(`invalid config: ${path || '(root)'} = ${show(value)}; expected ${expected}`);
}

function show(value: unknown): string {
  if (value === undefined) return 'undefined (missing)';
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** A finite number, optionally an integer within bounds. */
export function num(opts: { int?: boolean; min?: number; max?: number; gt?: number } = {}): Schema<number> {
  const parts = [opts.int ? 'an integer' : 'a number'];
  if (opts.gt !== undefined) parts.push(`> ${opts.gt}`);
  if (opts.min !== undefined) parts.push(`>= ${opts.min}`);
  if (opts.max !== undefined) parts.push(`<= ${opts.max}`);
  const expected = parts.join(' ');
  return {
    expected,
    parse(value, path) {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, value, expected);
      if (opts.int && !Number.isInteger(value)) fail(path, value, expected);
      if (opts.gt !== undefined && !(value > opts.gt)) fail(path, value, expected);
      if (opts.min !== undefined && value < opts.min) fail(path, value, expected);
      if (opts.max !== undefined && value > opts.max) fail(path, value, expected);
      return value;
    },
  };
}

/** A string, optionally one of a fixed set. */
export function str<T extends string = string>(choices?: readonly T[]): Schema<T> {
  const expected = choices ? `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}` : 'a string';
  return {
    expected,
    parse(value, path) {
      if (typeof value !== 'string' || (choices && !choices.includes(value as T))) fail(path, value, expected);
      return value as T;
    },
  };
}

/** A boolean. */
export function bool(): Schema<boolean> {
  return {
    expected: 'true or false',
    parse(value, path) {
      if (typeof value !== 'boolean') fail(path, value, 'true or false');
      return value;
    },
  };
}

/** A value that may be absent (undefined). */
export function optional<T>(inner: Schema<T>): Schema<T | undefined> {
  return {
    expected: `${inner.expected} (optional)`,
    parse: (value, path) => (value === undefined ? undefined : inner.parse(value, path)),
  };
}

/** An array whose items all match `item`. */
export function arrayOf<T>(item: Schema<T>, opts: { minLength?: number } = {}): Schema<T[]> {
  const expected = `an array of ${item.expected}${opts.minLength ? ` with at least ${opts.minLength} item(s)` : ''}`;
  return {
    expected,
    parse(value, path) {
      if (!Array.isArray(value) || value.length < (opts.minLength ?? 0)) fail(path, value, expected);
      return value.map((v, i) => item.parse(v, `${path}[${i}]`));
    },
  };
}

/** A JSON object with any keys (plugin options are checked by the plugin). */
export function record(): Schema<Record<string, unknown>> {
  return {
    expected: 'an object',
    parse(value, path) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, value, 'an object');
      return value as Record<string, unknown>;
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type Parsed<S extends Shape> = { [K in keyof S]: S[K] extends Schema<infer T> ? T : never };

/** An object with known fields; unknown fields are an error that lists the known ones. */
export function obj<S extends Shape>(shape: S): Schema<Parsed<S>> {
  const expected = `an object with fields ${Object.keys(shape).join(', ')}`;
  return {
    expected,
    parse(value, path) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(path, value, expected);
      const input = value as Record<string, unknown>;
      for (const key of Object.keys(input)) {
        if (!(key in shape)) {
          throw new ConfigError(
            `invalid config: unknown field ${path ? `${path}.` : ''}${key}; known fields: ${Object.keys(shape).join(', ')}`,
          );
        }
      }
      const out: Record<string, unknown> = {};
      for (const [key, schema] of Object.entries(shape)) {
        const v = schema.parse(input[key], path ? `${path}.${key}` : key);
        if (v !== undefined) out[key] = v;
      }
      return out as Parsed<S>;
    },
  };
}
