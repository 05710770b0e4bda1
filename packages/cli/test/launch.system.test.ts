import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, yuan } from './run.js';

const rankScript = path.join(repoRoot, 'packages/comm/test/fixtures/tcp-rank.mjs');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('yuan launch', () => {
  it('--nproc 4 starts four ranks on loopback that all-reduce; output is prefixed by rank', async () => {
    const r = await yuan(
      'launch',
      '--nproc',
      '4',
      '--master-port',
      String(await freePort()),
      '--',
      process.execPath,
      rankScript,
      'collectives',
    );
    expect(r.code, r.err).toBe(0);
    for (let rank = 0; rank < 4; rank++)
      expect(r.out).toMatch(new RegExp(`^\\[rank ${rank}\\] RESULT \\{"rank":${rank},"size":4,"errors":\\[\\]`, 'm'));
  });

  it('a rank killed mid-collective: the launch exits non-zero naming it, and the other ranks name it too', async () => {
    const r = await yuan(
      'launch',
      '--nproc',
      '3',
      '--master-port',
      String(await freePort()),
      '--',
      process.execPath,
      rankScript,
      'die',
      '{"victim":2}',
    );
    expect(r.code).toBe(137);
    expect(r.err).toMatch(/^error: rank 2 exited with signal SIGKILL/m);
    expect(r.err).toMatch(/^\[rank 0\] error: rank 2 is lost/m);
    expect(r.err).toMatch(/^\[rank 1\] error: rank 2 is lost/m);
  });

  it('--print slurm and --print k8s write job files', async () => {
    const s = await yuan('launch', '--print', 'slurm', '--nproc', '2', '--nnodes', '2', '--', 'yuan', 'train');
    expect(s.code).toBe(0);
    expect(s.out).toMatch(/^#!\/bin\/bash\n#SBATCH --job-name=yuan\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2/);
    // srun lets the other ranks say why a rank failed, and stops what still runs --grace seconds (default 60) later
    expect(s.out).toMatch(/\nsrun --kill-on-bad-exit=0 --wait=60 yuan train$/);
    expect(
      (await yuan('launch', '--print', 'slurm', '--nproc', '2', '--grace', '5', '--', 'yuan', 'train')).out,
    ).toMatch(/\nsrun --kill-on-bad-exit=0 --wait=5 yuan train$/);
    expect(
      (await yuan('launch', '--print', 'slurm', '--nproc', '2', '--grace', '0', '--', 'yuan', 'train')).out,
    ).toMatch(/\nsrun --kill-on-bad-exit=1 yuan train$/);
    expect(
      (await yuan('launch', '--print', 'k8s', '--nproc', '1', '--grace', '5', '--image', 'i:1', '--', 'yuan', 'train'))
        .err,
    ).toBe('error: --grace applies to local launches and --print slurm, not to --print k8s');
    const k = await yuan(
      'launch',
      '--print',
      'k8s',
      '--nproc',
      '1',
      '--nnodes',
      '3',
      '--name',
      'run1',
      '--image',
      'registry.example/yuan:1',
      '--',
      'yuan',
      'train',
    );
    expect(k.code).toBe(0);
    expect(k.out).toContain('image: "registry.example/yuan:1"');
    expect((await yuan('launch', '--print', 'k8s', '--nproc', '1', '--', 'yuan', 'train')).err).toMatch(
      /^error: --print k8s needs --image IMAGE/,
    );
    expect(k.out).toContain('completionMode: Indexed');
    expect(k.out).toContain('{ name: MASTER_ADDR, value: "run1-0.run1" }');
  });

  it('bad usage is a one-line error', async () => {
    expect((await yuan('launch', '--', 'x')).err).toMatch(/^error: missing --nproc/);
    expect((await yuan('launch', '--nproc', '2')).err).toMatch(/^error: no command to launch/);
    expect((await yuan('launch', '--nproc', '0', '--', 'x')).err).toMatch(/^error: --nproc "0" is not an integer >= 1/);
    expect((await yuan('launch', '--print', 'pbs', '--nproc', '1', '--', 'x')).err).toBe(
      'error: --print "pbs" is not slurm or k8s',
    );
    expect((await yuan('launch', '--print', 'slurm', '--nproc', '1', '--grace=-1', '--', 'x')).err).toBe(
      'error: --grace "-1" is not a number >= 0',
    );
  });
});
