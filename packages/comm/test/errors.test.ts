import { describe, expect, it } from 'vitest';
import { RankFailedError } from '../dist/index.js';

describe('RankFailedError', () => {
  it('names the rank the others report lost, also when a report was relayed through another rank', () => {
    // rank 1 died; rank 2 noticed first and relayed it; rank 0 then saw rank 2 go (its message carries rank 2's report)
    const err = new RankFailedError([
      { rank: 2, message: 'worker threw: rank 1 is lost: its worker thread ended without closing its process group' },
      { rank: 1, message: 'worker thread exited with code 3' },
      {
        rank: 0,
        message:
          'worker threw: rank 2 is lost: worker threw: rank 1 is lost: its worker thread ended without closing its process group',
      },
    ]);
    expect(err.rank).toBe(1);
    expect(err.message).toMatch(
      /^rank 1 failed: worker thread exited with code 3 \(2 other rank\(s\) failed after it\)$/,
    );
  });
});

describe('RankFailedError over tcp', () => {
  it('a report that names the lost rank and the connection it lost blames the lost rank', () => {
    const err = new RankFailedError([
      {
        rank: 0,
        message: 'exited with code 1: error: rank 2 is lost: its connection to rank 0 closed without a goodbye',
      },
      { rank: 2, message: 'exited with signal SIGKILL' },
      {
        rank: 1,
        message:
          'exited with code 1: error: rank 2 is lost: its connection to rank 0 closed without a goodbye (reported by rank 0)',
      },
    ]);
    expect(err.rank).toBe(2);
  });
});
