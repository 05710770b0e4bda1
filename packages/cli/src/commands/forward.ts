import { YuanError } from '@yuan/core';
import { nextTokenLoss } from '@yuan/model';
import { tf } from '@yuan/tensor';
import { requireString, type Command } from '../command.js';
import { BACKEND_OPTION, loadRegistry, PEFT_OPTION, PLUGIN_OPTION, openModel } from '../context.js';
import { writeFileAtomic } from '@yuan/core';
import { readJsonFile } from '../io.js';

function parseInput(raw: unknown, file: string): number[][] {
  const ids = (raw as { input_ids?: unknown })?.input_ids;
  const ok =
    Array.isArray(ids) &&
    ids.length > 0 &&
    ids.every(
      (row) =>
        Array.isArray(row) &&
        row.length > 0 &&
        row.length === (ids[0] as unknown[]).length &&
        row.every((v) => Number.isInteger(v)),
    );
  if (!ok)
    throw new YuanError(
      'input',
      `${file}: expected {"input_ids": number[][]} with non-empty rows of equal length of integers`,
    );
  return ids as number[][];
}

/** `yuan forward`: logits and mean next-token loss of a checkpoint on a batch of ids. */
export const forwardCommand: Command = {
  path: ['forward'],
  summary: 'run a checkpoint on {"input_ids": [[...]]} and write {"logits", "loss"}',
  usage: 'yuan forward --model DIR [--peft ADAPTER_DIR] --input IN.json [--output OUT.json] [--backend NAME]',
  options: {
    model: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
    set: { type: 'string', multiple: true },
    ...PLUGIN_OPTION,
    ...BACKEND_OPTION,
    ...PEFT_OPTION,
  },
  async run(values, _pos, io) {
    if (!values.peft) requireString(values, 'model', forwardCommand);
    const inputFile = requireString(values, 'input', forwardCommand);
    const ids = parseInput(readJsonFile(inputFile), inputFile);
    const model = await openModel(values, await loadRegistry(values), io.err);
    model.checkIds(ids.flat());
    const x = tf.tensor2d(ids, undefined, 'int32');
    const { logits } = model.forward(x);
    const loss = ids[0].length > 1 ? tf.tidy(() => nextTokenLoss(logits, x)) : undefined;
    const result = { logits: logits.arraySync(), loss: loss ? loss.dataSync()[0] : null };
    tf.dispose([x, logits, loss]);
    model.dispose();
    const text = JSON.stringify(result);
    if (values.output) {
      await writeFileAtomic(values.output as string, text);
      io.err(
        `wrote logits [${ids.length}, ${ids[0].length}, ${model.config.model.vocabSize}] and loss ${result.loss} to ${values.output}`,
      );
    } else io.out(text);
  },
};
