import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtCli } from './helpers.js';

describe('yuan filter (CLI)', () => {
  it('filters with the preset, writes output, rejects and report, and prints a summary', () => {
    const bin = builtCli();
    const dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-cli-'));
    try {
      const prose =
        'The committee met on Tuesday to discuss the new library, and the members agreed that the reading room should stay open later. ';
      const lines = [0, 1, 2, 3, 4, 5].map((i) =>
        JSON.stringify({
          id: i,
          text: `${prose.repeat(1)}Point ${i} of the plan was discussed at length. Then they went home. The end was near. ${'Everyone agreed on item ' + i + '. '.repeat(1)}It was late. They slept well.`,
        }),
      );
      writeFileSync(path.join(dir, 'in.jsonl'), [...lines, lines[0], 'not json'].join('\n'));
      const r = spawnSync(
        process.execPath,
        [
          bin,
          'filter',
          '--input',
          path.join(dir, 'in.jsonl'),
          '--output',
          path.join(dir, 'out.jsonl'),
          '--rejects',
          path.join(dir, 'rej.jsonl'),
          '--report',
          path.join(dir, 'r.json'),
        ],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/7 documents in \(1 malformed lines, 0 blank\)/);
      expect(r.stdout).toMatch(/exact-dedup\s+\d+\s+1\s+duplicate 1/);
      const rejects = readFileSync(path.join(dir, 'rej.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).reason);
      expect(rejects).toContain('input:invalid-json');
      expect(rejects).toContain('exact-dedup:duplicate');
      const report = JSON.parse(readFileSync(path.join(dir, 'r.json'), 'utf8'));
      expect(report.input.malformed).toBe(1);
      const bad = spawnSync(
        process.execPath,
        [bin, 'filter', '--input', path.join(dir, 'in.jsonl'), '--output', path.join(dir, 'o.jsonl'), '--shard', 'x'],
        { encoding: 'utf8' },
      );
      expect(bad.status).toBe(2);
      expect(bad.stderr.trim().split('\n')).toEqual(['error: --shard "x" must be I/N with 0 <= I < N, e.g. 0/4']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
