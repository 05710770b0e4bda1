/** @yuan/cli: the `yuan` command line as a library (`main`), for embedding and tests. */
export { main } from './main.js';
export type { Command, CommandIO } from './command.js';
