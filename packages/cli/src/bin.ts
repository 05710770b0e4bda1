#!/usr/bin/env node
import { main } from './main.js';

// `yuan … | head`: a reader that closes the pipe early ends the command quietly, as Unix tools do
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

// The commands that decode (one product after another, a few microseconds of JavaScript apart) let the native
// addon's idle workers spin between products when the machine's other work leaves them their cores
// (@yuan/tensor-native, YUAN_THREAD_SPIN=auto; a value the user sets wins). Training keeps them asleep.
if (['generate', 'serve', 'eval'].includes(process.argv[2] ?? '')) process.env.YUAN_THREAD_SPIN ??= 'auto';

const code = await main(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  isTTY: Boolean(process.stderr.isTTY),
});
process.exitCode = code;
