import { YuanError } from '@yuan/core';

/**
 * A peer rank died or vanished: its socket closed without a goodbye, its worker thread exited, or another rank
 * reported it lost. `rank` is the lost rank's global rank. Code `peer-lost`.
 */
export class PeerLostError extends YuanError {
  /** The global rank that was lost. */
  readonly rank: number;
  constructor(rank: number, message: string) {
    super('peer-lost', message);
    this.name = 'PeerLostError';
    this.rank = rank;
  }
}

/** A peer sent nothing (or did not take our data) for longer than the timeout. `rank` is that peer. Code `peer-timeout`. */
export class PeerTimeoutError extends YuanError {
  /** The global rank that stayed silent. */
  readonly rank: number;
  constructor(rank: number, message: string) {
    super('peer-timeout', message);
    this.name = 'PeerTimeoutError';
    this.rank = rank;
  }
}

/** Start-up failed: ranks missing, world sizes or config hashes that disagree, a port in use. Code `rendezvous`. */
export class RendezvousError extends YuanError {
  constructor(message: string) {
    super('rendezvous', message);
    this.name = 'RendezvousError';
  }
}

/** One or more ranks of `spawnThreadRanks` / `launchLocal` failed; `failures` lists each failed rank's message. */
export class RankFailedError extends YuanError {
  /** The first rank that failed. */
  readonly rank: number;
  /** Every failed rank and its one-line message, in order of failure. */
  readonly failures: { rank: number; message: string }[];
  constructor(failures: { rank: number; message: string }[]) {
    failures = rootCauseFirst(failures);
    const first = failures[0]!;
    const others = failures.length > 1 ? ` (${failures.length - 1} other rank(s) failed after it)` : '';
    super('rank-failed', `rank ${first.rank} failed: ${first.message}${others}`);
    this.name = 'RankFailedError';
    this.rank = first.rank;
    this.failures = failures;
  }
}

/**
 * Orders failures so that a rank the others report as lost ("rank N is lost", "rank N sent nothing") comes first:
 * when rank 2 is killed, ranks 0 and 1 may report their own errors before rank 2's exit is seen. A report relayed
 * through another rank blames the rank it names last (the original cause).
 */
export function rootCauseFirst<F extends { rank: number; message: string }>(failures: F[]): F[] {
  const blamed = new Map<number, number>();
  for (const f of failures) {
    // a relayed report ("rank 2 is lost: worker threw: rank 1 is lost: …") blames its innermost lost rank, the one
    // that failed first; a report without "is lost" blames the rank its first timeout or closed connection names
    const m =
      [...f.message.matchAll(/rank (\d+) is lost/g)].pop() ??
      /rank (\d+) (?:sent nothing|did not take data|closed|stopped)/.exec(f.message) ??
      undefined;
    if (m && Number(m[1]) !== f.rank) blamed.set(Number(m[1]), (blamed.get(Number(m[1])) ?? 0) + 1);
  }
  const score = (f: F) => blamed.get(f.rank) ?? 0;
  return failures
    .map((f, i) => [f, i] as const)
    .sort((a, b) => score(b[0]) - score(a[0]) || a[1] - b[1])
    .map(([f]) => f);
}
