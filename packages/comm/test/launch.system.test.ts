import { describe, expect, it } from 'vitest';
import { kubernetesManifest, launchLocal, slurmScript } from '../src/index.js';
import { freePort, tcpRank } from './helpers.js';

async function launch(nproc: number, args: string[]) {
  const lines: string[] = [];
  const res = await launchLocal({
    nproc,
    masterPort: await freePort(),
    command: [process.execPath, tcpRank, ...args],
    onLine: (r, s, l) => lines.push(`${r} ${s} ${l}`),
  });
  return { ...res, lines };
}

describe('launchLocal', () => {
  it('starts 4 ranks on loopback with torchrun variables; they all-reduce', async () => {
    const { code, lines } = await launch(4, ['collectives']);
    expect(code).toBe(0);
    for (let r = 0; r < 4; r++) {
      const line = lines.find((l) => l.startsWith(`${r} stdout RESULT`));
      expect(line).toBeDefined();
      expect(JSON.parse(line!.split('RESULT ')[1]!)).toMatchObject({
        rank: r,
        size: 4,
        errors: [],
        source: 'torchrun',
      });
    }
  });

  it('when a rank is SIGKILLed it reports that rank first, exits non-zero, and the others name it', async () => {
    const { code, failures, lines } = await launch(3, ['die', JSON.stringify({ victim: 1 })]);
    expect(code).toBe(128 + 9);
    expect(failures[0]).toEqual({ rank: 1, message: 'exited with signal SIGKILL' });
    expect(failures.map((f) => f.rank).sort()).toEqual([0, 1, 2]);
    for (const r of [0, 2]) expect(lines.some((l) => l.startsWith(`${r} stderr error: rank 1 is lost`))).toBe(true);
  });

  it("a rank's reason is its last error line, never the progress line a killed rank happened to print last", async () => {
    const script = (body: string) => [process.execPath, '-e', body];
    const killed = await launchLocal({
      nproc: 1,
      command: script("console.error('3/40 loss 4.7'); process.kill(process.pid, 'SIGKILL')"),
      onLine: () => {},
    });
    expect(killed.failures[0]).toEqual({ rank: 0, message: 'exited with signal SIGKILL' });
    const failed = await launchLocal({
      nproc: 1,
      command: script(
        "console.error('error: the data folder is missing'); console.error('  (see yuan data prepare)'); process.exit(1)",
      ),
      onLine: () => {},
    });
    expect(failed.failures[0]!.message).toBe('exited with code 1: error: the data folder is missing');
    const thrown = await launchLocal({
      nproc: 1,
      command: script("console.error('2/4 loss 5.5'); throw new TypeError('x is not a function')"),
      onLine: () => {},
    });
    expect(thrown.failures[0]!.message).toMatch(/^exited with code 1: TypeError: x is not a function/);
    const quiet = await launchLocal({
      nproc: 1,
      command: script("console.error('2/4 loss 5.5'); process.exit(3)"),
      onLine: () => {},
    });
    expect(quiet.failures[0]!.message).toBe('exited with code 3');
  });

  it('a rank the launcher had to stop after the grace period is said to be stopped by it, not to have died', async () => {
    const body =
      "if (process.env.RANK === '0') { console.error('error: bad input'); process.exit(2) } else setInterval(() => {}, 1000)";
    const res = await launchLocal({
      nproc: 2,
      graceMs: 200,
      command: [process.execPath, '-e', body],
      onLine: () => {},
    });
    expect(res.code).toBe(2);
    expect(res.failures).toEqual([
      { rank: 0, message: 'exited with code 2: error: bad input' },
      { rank: 1, message: 'was stopped by the launcher (SIGTERM) 0.2 s after another rank failed' },
    ]);
  });

  it('a command that cannot start is a failure naming the rank', async () => {
    const res = await launchLocal({ nproc: 1, command: ['/nonexistent/yuan-binary'], onLine: () => {} });
    expect(res.code).toBe(1);
    expect(res.failures[0]!.message).toMatch(/could not start \/nonexistent\/yuan-binary/);
  });

  it('rejects bad options with a one-line usage error', () => {
    expect(() => launchLocal({ nproc: 0, command: ['x'] })).toThrow('--nproc 0 is not a positive integer');
    expect(() => launchLocal({ nproc: 1, nnodes: 2, nodeRank: 2, command: ['x'] })).toThrow(
      '--node-rank 2 is not in 0..1',
    );
    expect(() => launchLocal({ nproc: 1, command: [] })).toThrow(/no command/);
  });
});

describe('job files', () => {
  it('the sbatch script runs one srun task per rank with rank 0 on the first host', () => {
    const s = slurmScript({ nproc: 2, nnodes: 3, masterPort: 1234, command: ['yuan', 'train', '--dp', '6', "it's"] });
    expect(s).toContain('#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=2');
    expect(s).toContain('export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"');
    // a failed rank does not get the others killed before they say why; srun stops what still runs 60 s after the first exit
    expect(s).toContain("\nsrun --kill-on-bad-exit=0 --wait=60 yuan train --dp 6 'it'\\''s'\n");
  });

  it("the sbatch script's grace: whole seconds of srun --wait, 0 kills at once, anything else is a usage error", () => {
    const job = { nproc: 2, nnodes: 1, command: ['yuan', 'train'] };
    expect(slurmScript({ ...job, graceSeconds: 2.5 })).toContain('\nsrun --kill-on-bad-exit=0 --wait=3 yuan train\n');
    expect(slurmScript({ ...job, graceSeconds: 0 })).toContain('\nsrun --kill-on-bad-exit=1 yuan train\n');
    expect(() => slurmScript({ ...job, graceSeconds: -1 })).toThrow('--grace -1 is not a number of seconds >= 0');
    expect(() => slurmScript({ ...job, graceSeconds: Number.NaN })).toThrow(
      '--grace NaN is not a number of seconds >= 0',
    );
  });

  it('the Kubernetes manifest is a headless Service and an indexed Job whose pod 0 is the master', () => {
    const one = kubernetesManifest({ nproc: 1, nnodes: 4, command: ['yuan', 'train'], name: 'job', image: 'img:1' });
    expect(one).toMatch(
      /kind: Service[\s\S]*clusterIP: None[\s\S]*kind: Job[\s\S]*completionMode: Indexed\n  completions: 4/,
    );
    expect(one).toContain('subdomain: job');
    expect(one).toContain('{ name: MASTER_ADDR, value: "job-0.job" }');
    expect(one).toContain('{ name: WORLD_SIZE, value: "4" }');
    expect(one).toContain('command: ["yuan", "train"]');
    const two = kubernetesManifest({ nproc: 2, nnodes: 2, command: ['yuan', 'train'], image: 'img:1' });
    expect(two).toContain(
      'yuan launch --nproc 2 --nnodes 2 --node-rank \\"$JOB_COMPLETION_INDEX\\" --master-addr yuan-0.yuan',
    );
    expect(() => kubernetesManifest({ nproc: 1, nnodes: 1, command: ['x'], name: 'Bad_Name', image: 'img:1' })).toThrow(
      /not a Kubernetes name/,
    );
  });
});
