import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { readConfigFile } from './config-file.js';
import { ConfigError } from './errors.js';
import { applySet, deepMerge } from './merge.js';

/** The error a call throws (or a failure if it throws none). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

const polluted = () =>
  (({}) as Record<string, unknown>).x !== undefined || ({} as Record<string, unknown>).polluted !== undefined;

describe('prototype-polluting config keys', () => {
  afterEach(() => {
    // if a test failed by polluting, do not let it break every later test
    delete (Object.prototype as Record<string, unknown>).x;
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it.each([
    '__proto__.x=1',
    '__proto__.polluted=1',
    'constructor.x=1',
    'prototype.x=1',
    'attention.options.__proto__.x=1',
    'a.constructor.prototype.x=1',
    'model.constructor=1',
  ])('--set %s is a one-line ConfigError and pollutes nothing', (assignment) => {
    const e = thrown(() => applySet({}, assignment));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(
      /^invalid --set ".*": "(__proto__|constructor|prototype)" is not allowed \(__proto__, constructor and prototype cannot be config keys\)$/,
    );
    expect(polluted()).toBe(false);
  });

  it('rejects the keys inside a --set JSON value too', () => {
    const e = thrown(() => applySet({}, 'attention.options={"__proto__":{"x":1}}'));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe(
      'invalid --set "attention.options={"__proto__":{"x":1}}": "__proto__" is not allowed (__proto__, constructor and prototype cannot be config keys)',
    );
    expect(polluted()).toBe(false);
  });

  it('rejects them in merged layers (JSON.parse makes __proto__ an own key)', () => {
    const layer = JSON.parse('{"attention": {"options": {"__proto__": {"x": 1}}}}');
    const e = thrown(() => resolveConfig(layer));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toBe(
      'invalid config: "attention.options.__proto__" is not allowed (__proto__, constructor and prototype cannot be config keys)',
    );
    expect(() => deepMerge({}, { list: [{ constructor: { prototype: { x: 1 } } }] })).toThrow(
      '"list[0].constructor" is not allowed',
    );
    expect(polluted()).toBe(false);
  });

  it.each([
    ['c.json', '{"model": {"__proto__": {"x": 1}}}', 'model.__proto__'],
    ['c.yaml', 'train:\n  constructor:\n    prototype:\n      x: 1\n', 'train.constructor'],
    ['c.yml', 'prototype:\n  x: 1\n', 'prototype'],
  ])('a config file %s using them is a one-line error naming the file and the key', (name, text, key) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'yuan-proto-'));
    try {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      const e = thrown(() => readConfigFile(file));
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toBe(
        `${file}: "${key}" is not allowed (__proto__, constructor and prototype cannot be config keys)`,
      );
      expect(e.message.split('\n')).toHaveLength(1);
      expect(polluted()).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('still accepts ordinary keys, including names of Object.prototype methods', () => {
    expect(applySet({}, 'attention.options.toString=3')).toEqual({ attention: { options: { toString: 3 } } });
    expect(applySet({}, 'a.hasOwnProperty.b=1')).toEqual({ a: { hasOwnProperty: { b: 1 } } });
  });
});
