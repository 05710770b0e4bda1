import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { YuanError } from './errors.js';
import { assertSafeConfigKeys, type JsonObject } from './merge.js';

let yamlParse: ((text: string) => unknown) | undefined;

/** Parses YAML; the yaml package is loaded on first use (it takes about as long to load as Node takes to start). */
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse;
  return yamlParse(text);
}

/** Reads a config layer from a YAML or JSON file (by extension); an empty file is an empty layer. Errors name the file. */
export function readConfigFile(file: string): JsonObject {
  if (!existsSync(file)) throw new YuanError('config', `config file not found: ${file}`);
  const text = readFileSync(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new YuanError('config', `${file}: cannot parse (${(e as Error).message.split('\n')[0]})`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new YuanError('config', `${file}: expected a mapping of config sections at the top level`);
  }
  assertSafeConfigKeys(parsed, file);
  return parsed as JsonObject;
}
