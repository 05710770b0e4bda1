import type { Command } from '../command.js';

/** Every `yuan` subcommand; a package's command is one file in this folder and one entry here. */
export const COMMANDS: Command[] = [];
