import { parseArgs, type ParseArgsConfig } from 'node:util';
import { YuanError } from '@yuan/core';

/** Option declarations of a command, in node:util parseArgs form. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Where a command writes: stdout for results, stderr for progress and diagnostics. */
export interface CommandIO {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Whether stderr is a terminal (progress bars) or not (plain lines). */
  isTTY: boolean;
}

/** One `yuan` subcommand. `path` is its words, e.g. ['presets', 'list']. */
export interface Command {
  path: string[];
  summary: string;
  usage: string;
  options: OptionSpec;
  /**
   * Options that depend on the arguments (e.g. the flags a plugin declares), resolved before parsing; default
   * `options`. May load plugins.
   */
  resolveOptions?(argv: string[]): Promise<OptionSpec>;
  run(values: Record<string, unknown>, positionals: string[], io: CommandIO): Promise<number | void>;
}

/**
 * A command as listed in `yuan --help`: its words and summary, and `load`, which imports the command's module only when
 * it is chosen (command modules import TensorFlow.js and the model, which take most of a second to load).
 */
export interface CommandEntry {
  path: string[];
  summary: string;
  load(): Promise<Command>;
}

/** Parses argv for a command; an unknown or malformed option is a usage error naming it. */
export function parseCommandArgs(cmd: Command, argv: string[], options: OptionSpec = cmd.options) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new YuanError('usage', `${(e as Error).message.split('\n')[0]}\nusage: ${cmd.usage}`);
  }
}

/** A required string option, or a usage error naming it. */
export function requireString(values: Record<string, unknown>, name: string, cmd: Command): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new YuanError('usage', `missing --${name}\nusage: ${cmd.usage}`);
  return v;
}

/** Parses a numeric option; a value that is not a number (or below `min`) is a usage error naming the flag. */
export function numberOption(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  opts: { int?: boolean; min?: number } = {},
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (
    typeof raw !== 'string' ||
    raw.trim() === '' ||
    !Number.isFinite(n) ||
    (opts.int && !Number.isInteger(n)) ||
    (opts.min !== undefined && n < opts.min)
  ) {
    const what = `${opts.int ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}`;
    throw new YuanError('usage', `--${name} ${JSON.stringify(raw)} is not ${what}`);
  }
  return n;
}

/** Parses a comma-separated list of integers such as `1,2,3`; anything else is a usage error naming the flag. */
export function idListOption(raw: string, name: string): number[] {
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new YuanError('usage', `--${name} "${raw}" must be a comma-separated list of non-negative integers`);
  }
  return ids;
}

declare const __YUAN_VERSION__: string | undefined;

/** The version of this build of the `yuan` CLI (from its package.json at build time; `dev` when run from source). */
export const YUAN_VERSION: string = typeof __YUAN_VERSION__ === 'string' ? __YUAN_VERSION__ : 'dev';
