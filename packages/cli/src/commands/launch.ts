import { writeFileSync } from 'node:fs';
import { YuanError } from '@yuan/core';
import { kubernetesManifest, launchLocal, slurmScript } from '@yuan/comm';
import { numberOption, type Command } from '../command.js';

/** `yuan launch`: start the local ranks of a multi-process job (torchrun's role), or print a SLURM / Kubernetes job. */
export const launchCommand: Command = {
  path: ['launch'],
  summary:
    'start N local ranks of a command with RANK/WORLD_SIZE/MASTER_* set, or print a SLURM or Kubernetes job for it',
  usage:
    'yuan launch --nproc N [--nnodes K --node-rank R --master-addr A --master-port P] [--grace S] -- COMMAND …\n' +
    '       yuan launch --print slurm|k8s --nproc N [--nnodes K --master-port P --name NAME --out FILE] [--grace S (slurm)] [--image IMAGE (k8s: required)] -- COMMAND …\n' +
    '  --grace S: after one rank fails, how long the others get to fail by themselves (and say why) before SIGTERM, then\n' +
    '  SIGKILL 5 s later (default 10); yuan launch exits non-zero naming the rank that failed first. With --print slurm:\n' +
    '  how long after the first rank ends srun lets the others end by themselves (and say why) before it kills them\n' +
    "  (srun --wait; default 60 = yuan train's default --timeout, raise both together; 0 = at once, --kill-on-bad-exit=1).",
  options: {
    nproc: { type: 'string' },
    nnodes: { type: 'string' },
    'node-rank': { type: 'string' },
    'master-addr': { type: 'string' },
    'master-port': { type: 'string' },
    grace: { type: 'string' },
    print: { type: 'string' },
    name: { type: 'string' },
    image: { type: 'string' },
    out: { type: 'string' },
  },
  async run(values, positionals, io) {
    if (values.nproc === undefined) throw new YuanError('usage', `missing --nproc\nusage: ${launchCommand.usage}`);
    const nproc = numberOption(values, 'nproc', 1, { int: true, min: 1 });
    const nnodes = numberOption(values, 'nnodes', 1, { int: true, min: 1 });
    const masterPort = numberOption(values, 'master-port', 29500, { int: true, min: 1 });
    if (positionals.length === 0)
      throw new YuanError('usage', `no command to launch: give it after --\nusage: ${launchCommand.usage}`);
    if (values.print !== undefined) {
      const graceSeconds = values.grace === undefined ? undefined : numberOption(values, 'grace', 0, { min: 0 });
      const job = {
        nproc,
        nnodes,
        masterPort,
        command: positionals,
        name: values.name as string | undefined,
        image: values.image as string | undefined,
        graceSeconds,
      };
      let text: string;
      if (values.print === 'slurm') text = slurmScript(job);
      else if (values.print === 'k8s' && graceSeconds !== undefined)
        throw new YuanError('usage', '--grace applies to local launches and --print slurm, not to --print k8s');
      else if (values.print === 'k8s') text = kubernetesManifest(job);
      else throw new YuanError('usage', `--print "${String(values.print)}" is not slurm or k8s`);
      if (typeof values.out === 'string')
        writeFileSync(values.out, text, { mode: values.print === 'slurm' ? 0o755 : 0o644 });
      else io.out(text.trimEnd());
      return 0;
    }
    const result = await launchLocal({
      nproc,
      nnodes,
      nodeRank: numberOption(values, 'node-rank', 0, { int: true, min: 0 }),
      masterAddr: (values['master-addr'] as string | undefined) ?? '127.0.0.1',
      masterPort,
      graceMs: numberOption(values, 'grace', 10, { min: 0 }) * 1000,
      command: positionals,
      onLine: (rank, stream, line) => (stream === 'stdout' ? io.out : io.err)(`[rank ${rank}] ${line}`),
    });
    if (result.code === 0) return 0;
    const [first, ...rest] = result.failures;
    // the root cause first (the rank the others blame); the rest in the order they ended
    io.err(
      `error: rank ${first!.rank} ${first!.message}${rest.length ? ` (${rest.map((f) => `rank ${f.rank}`).join(', ')} failed too)` : ''}`,
    );
    return result.code;
  },
};
