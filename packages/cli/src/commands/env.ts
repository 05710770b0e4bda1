import { cpus, totalmem } from 'node:os';
import { initBackend, tf } from '@yuan/tensor';
import type { Command } from '../command.js';
import { BACKEND_OPTION } from '../context.js';

/** `yuan env`: the backend chosen and why, versions and threads. */
export const envCommand: Command = {
  path: ['env'],
  summary: 'show the tensor backend chosen and why, versions and threads',
  usage: 'yuan env [--backend NAME] [--json]',
  options: { ...BACKEND_OPTION, json: { type: 'boolean' } },
  async run(values, _pos, io) {
    const report = await initBackend(values.backend as string | undefined);
    const info = {
      backend: report.name,
      reason: report.reason,
      attempts: report.attempts,
      threads: report.threads,
      versions: { node: process.versions.node, tfjs: tf.version.tfjs },
      cpus: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
    };
    if (values.json) {
      io.out(JSON.stringify(info, null, 2));
      return;
    }
    io.out(`backend   ${info.backend} (${info.reason})`);
    for (const a of report.attempts) io.out(`  ${a.ok ? 'ok  ' : 'skip'} ${a.name.padEnd(15)} ${a.detail}`);
    io.out(`threads   ${info.threads} of ${info.cpus} CPUs, ${info.memoryGiB} GiB memory`);
    io.out(`versions  node ${info.versions.node}, tfjs ${info.versions.tfjs}`);
  },
};
