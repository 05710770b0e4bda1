import { describe, expect, it } from 'vitest';
import { expandNodelist, rankFromEnvironment } from '../src/index.js';

describe('rankFromEnvironment', () => {
  it('reads torchrun variables', () => {
    expect(
      rankFromEnvironment({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', MASTER_ADDR: 'h0', MASTER_PORT: '1234' }),
    ).toEqual({
      rank: 3,
      worldSize: 8,
      localRank: 1,
      masterAddr: 'h0',
      masterPort: 1234,
      source: 'torchrun',
    });
    expect(rankFromEnvironment({ RANK: '0', WORLD_SIZE: '2' })).toMatchObject({
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      localRank: 0,
    });
  });

  it('reads SLURM variables and takes the first host of the step node list as master', () => {
    const env = {
      SLURM_PROCID: '5',
      SLURM_NTASKS: '8',
      SLURM_LOCALID: '1',
      SLURM_STEP_NODELIST: 'gpu[07-08,10]',
      SLURM_JOB_NODELIST: 'other1',
      SLURM_JOB_ID: '123456',
    };
    expect(rankFromEnvironment(env)).toEqual({
      rank: 5,
      worldSize: 8,
      localRank: 1,
      masterAddr: 'gpu07',
      masterPort: 20000 + (123456 % 20000),
      source: 'slurm',
    });
    expect(rankFromEnvironment({ ...env, SLURM_STEP_NODELIST: undefined }).masterAddr).toBe('other1');
    expect(rankFromEnvironment({ ...env, MASTER_ADDR: 'm', MASTER_PORT: '999' })).toMatchObject({
      masterAddr: 'm',
      masterPort: 999,
    });
  });

  it('reads a Kubernetes indexed Job', () => {
    expect(rankFromEnvironment({ JOB_COMPLETION_INDEX: '2', WORLD_SIZE: '4', MASTER_ADDR: 'yuan-0.yuan' })).toEqual({
      rank: 2,
      worldSize: 4,
      localRank: 0,
      masterAddr: 'yuan-0.yuan',
      masterPort: 29500,
      source: 'kubernetes',
    });
    expect(
      rankFromEnvironment({
        JOB_COMPLETION_INDEX: '1',
        WORLD_SIZE: '2',
        HOSTNAME: 'train-job-1',
        YUAN_HEADLESS_SERVICE: 'svc',
      }).masterAddr,
    ).toBe('train-job-0.svc');
  });

  it('prefers torchrun over SLURM (yuan launch inside srun) and falls back to one rank', () => {
    expect(
      rankFromEnvironment({ RANK: '1', WORLD_SIZE: '2', SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_JOB_NODELIST: 'a' })
        .source,
    ).toBe('torchrun');
    expect(rankFromEnvironment({})).toMatchObject({ rank: 0, worldSize: 1, source: 'none' });
  });

  it('rejects malformed or inconsistent variables with a message naming them', () => {
    expect(() => rankFromEnvironment({ RANK: '4', WORLD_SIZE: '4' })).toThrow('RANK=4 is not below WORLD_SIZE=4');
    expect(() => rankFromEnvironment({ RANK: 'x', WORLD_SIZE: '4' })).toThrow(/RANK="x"/);
    expect(() => rankFromEnvironment({ RANK: '0' })).toThrow(/WORLD_SIZE is not/);
    expect(() => rankFromEnvironment({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '70000' })).toThrow(
      /MASTER_PORT=70000/,
    );
    expect(() => rankFromEnvironment({ SLURM_PROCID: '0', SLURM_NTASKS: '2' })).toThrow(/SLURM_STEP_NODELIST/);
    expect(() => rankFromEnvironment({ JOB_COMPLETION_INDEX: '0' })).toThrow(/WORLD_SIZE/);
  });
});

describe('expandNodelist', () => {
  it('expands ranges, lists, padding and several bracket groups', () => {
    expect(expandNodelist('node[01-04,07]')).toEqual(['node01', 'node02', 'node03', 'node04', 'node07']);
    expect(expandNodelist('a1,b[9-10]-ib,c')).toEqual(['a1', 'b9-ib', 'b10-ib', 'c']);
    expect(expandNodelist('r[1-2]n[1-2]')).toEqual(['r1n1', 'r1n2', 'r2n1', 'r2n2']);
    expect(expandNodelist('localhost')).toEqual(['localhost']);
  });
  it('rejects malformed lists', () => {
    expect(() => expandNodelist('node[1-')).toThrow(/unmatched/);
    expect(() => expandNodelist('node[3-1]')).toThrow(/descending/);
    expect(() => expandNodelist('node[a]')).toThrow(/bad range/);
  });
});
