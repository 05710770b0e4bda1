import { YuanError } from '@yuan/core';
import { parseCommandArgs, YUAN_VERSION, type CommandEntry, type CommandIO } from './command.js';
import { COMMANDS } from './commands/index.js';

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  return [
    'yuan: train, run and evaluate YUAN 2.0-style language models',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Run `yuan COMMAND --help` for its options; `yuan --version` prints the version.',
  ].join('\n');
}

function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  let best: { entry: CommandEntry; rest: string[] } | undefined;
  for (const cmd of COMMANDS) {
    if (cmd.path.every((w, i) => argv[i] === w) && (!best || cmd.path.length > best.entry.path.length)) {
      best = { entry: cmd, rest: argv.slice(cmd.path.length) };
    }
  }
  return best;
}

/** Runs the CLI on argv (without node and script) and returns the exit code; user errors print one line. */
export async function main(argv: string[], io: CommandIO): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(help());
    return 0;
  }
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.out(`yuan ${YUAN_VERSION}`);
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    io.err(`error: unknown command "${argv.join(' ')}"\n\n${help()}`);
    return 2;
  }
  const { entry, rest } = found;
  try {
    // only the chosen command's module is imported (it may import TensorFlow.js); the others stay unloaded
    const cmd = await entry.load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`${cmd.summary}\n\nusage: ${cmd.usage}`);
      return 0;
    }
    const options = cmd.resolveOptions ? await cmd.resolveOptions(rest) : cmd.options;
    const { values, positionals } = parseCommandArgs(cmd, rest, options);
    return (await cmd.run(values as Record<string, unknown>, positionals, io)) ?? 0;
  } catch (e) {
    if (e instanceof YuanError) {
      io.err(`error: ${e.message}`);
      return e.code === 'usage' ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && (err.code === 'ENOENT' || err.code === 'EACCES' || err.code === 'EISDIR')) {
      io.err(`error: ${err.message}`);
      return 1;
    }
    io.err(`error: ${err?.stack ?? String(e)}`);
    return 1;
  }
}
