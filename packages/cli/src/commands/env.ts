import { cpus, totalmem } from 'node:os';
import { initBackend, tf } from '@yuan/tensor';
import type { Command } from '../command.js';
import { BACKEND_OPTION, loadRegistry, PLUGIN_OPTION } from '../context.js';

/** `yuan env`: the registered backends by priority, the one chosen and why, versions and threads. */
export const envCommand: Command = {
  path: ['env'],
  summary: 'show the tensor backends by priority, the one chosen and why, versions and threads',
  usage: 'yuan env [--backend NAME] [--plugin PKG|PATH ...] [--json]',
  options: { ...BACKEND_OPTION, ...PLUGIN_OPTION, json: { type: 'boolean' } },
  async run(values, _pos, io) {
    const registry = await loadRegistry(values);
    const report = await initBackend(values.backend as string | undefined, registry);
    const tried = new Map(report.attempts.map((a) => [a.name, a]));
    const backends = report.registered.map((b) => {
      const a = tried.get(b.name);
      const status = a?.ok ? 'chosen' : a ? 'failed' : 'not tried';
      return {
        name: b.name,
        priority: b.priority,
        source: registry.sourceOf('backend', b.name),
        status,
        detail: a && !a.ok ? a.detail : b.description,
      };
    });
    const info = {
      backend: report.name,
      reason: report.reason,
      backends,
      attempts: report.attempts,
      threads: report.threads,
      ...(report.library ? { library: report.library } : {}),
      versions: { node: process.versions.node, tfjs: tf.version.tfjs },
      cpus: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
    };
    if (values.json) {
      io.out(JSON.stringify(info, null, 2));
      return;
    }
    io.out(`backend   ${info.backend} (${info.reason})`);
    const w = Math.max(...backends.map((b) => b.name.length));
    io.out(`  ${'status'.padEnd(9)} ${'name'.padEnd(w)} priority  source`);
    for (const b of backends)
      io.out(`  ${b.status.padEnd(9)} ${b.name.padEnd(w)} ${String(b.priority).padStart(8)}  ${b.source}: ${b.detail}`);
    io.out(`threads   ${info.threads} of ${info.cpus} CPUs, ${info.memoryGiB} GiB memory`);
    if (info.library) io.out(`library   ${info.library}`);
    io.out(`versions  node ${info.versions.node}, tfjs ${info.versions.tfjs}`);
  },
};
