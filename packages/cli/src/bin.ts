#!/usr/bin/env node
import { main } from './main.js';

// `yuan … | head`: a reader that closes the pipe early ends the command quietly, as Unix tools do
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const code = await main(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  isTTY: Boolean(process.stderr.isTTY),
});
process.exitCode = code;
