import type { Command } from '../command.js';
import { envCommand } from './env.js';
import { filterCommand, filterPlanCommand, filterStageCommand } from './filter.js';
import { forwardCommand } from './forward.js';
import { generateCommand } from './generate.js';
import { presetsList, presetsShow } from './presets.js';
import { tokenizeCommand } from './tokenize.js';
import { trainCommand } from './train.js';
import { dataPrepare } from './data.js';
import { experimentAblation } from './experiment.js';
import { evalCommand } from './eval.js';
import { serveCommand } from './serve.js';

/** Every `yuan` subcommand; a package's command is one file in this folder and one entry here. */
export const COMMANDS: Command[] = [envCommand, presetsList, presetsShow, forwardCommand, generateCommand, tokenizeCommand, dataPrepare, trainCommand, experimentAblation, filterCommand, filterPlanCommand, filterStageCommand, evalCommand, serveCommand];
