import type { Command } from '../command.js';
import { CONFIG_OPTIONS, loadConfig, loadRegistry } from '../context.js';

/** `yuan plugins list`: every registered plugin with its kind, source package and options (their defaults). */
export const pluginsList: Command = {
  path: ['plugins', 'list'],
  summary:
    "list the registered plugins (built-in and loaded with --plugin or a config's plugins:) with kind, source and options",
  usage: 'yuan plugins list [--kind KIND] [--plugin PKG|PATH ...] [--config F] [--json]',
  options: { kind: { type: 'string' }, json: { type: 'boolean' }, ...CONFIG_OPTIONS },
  async run(values, _pos, io) {
    const registry = await loadRegistry(values, values.config ? await loadConfig(values) : undefined);
    const kind = values.kind as string | undefined;
    if (kind && !registry.kinds().includes(kind)) {
      io.err(`error: no plugins of kind "${kind}" (kinds: ${registry.kinds().join(', ')})`);
      return 2;
    }
    const rows = registry.list(kind).map((p) => ({
      kind: p.kind,
      name: p.name,
      source: registry.sourceOf(p.kind, p.name),
      description: p.description,
      options: p.defaults ?? {},
      ...((p as { flags?: unknown }).flags ? { flags: (p as { flags?: unknown }).flags } : {}),
      // a backend's selection order (TensorFlow.js's registerBackend priority: higher is tried first)
      ...(typeof (p as { priority?: unknown }).priority === 'number'
        ? { priority: (p as unknown as { priority: number }).priority }
        : {}),
    }));
    if (values.json) {
      io.out(JSON.stringify(rows, null, 2));
      return;
    }
    const w = (header: string, f: (r: (typeof rows)[number]) => string) =>
      Math.max(header.length, ...rows.map((r) => f(r).length));
    const [wk, wn, ws] = [w('kind', (r) => r.kind), w('name', (r) => r.name), w('source', (r) => r.source)];
    io.out(`${'kind'.padEnd(wk)}  ${'name'.padEnd(wn)}  ${'source'.padEnd(ws)}  description; options (defaults)`);
    for (const r of rows) {
      const opts = JSON.stringify(r.options);
      io.out(
        `${r.kind.padEnd(wk)}  ${r.name.padEnd(wn)}  ${r.source.padEnd(ws)}  ${r.description}${r.priority !== undefined ? `; priority ${r.priority}` : ''}${opts !== '{}' ? `; ${opts}` : ''}`,
      );
    }
  },
};
