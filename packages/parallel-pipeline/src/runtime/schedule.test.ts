import { describe, expect, it } from 'vitest';
import { stagePrograms } from './schedule.js';

describe('stagePrograms', () => {
  it('runs gpipe and 1f1b, and refuses split-backward and virtual-stage schedules on one line', () => {
    expect(stagePrograms('1f1b', 2, 4)).toHaveLength(2);
    expect(() => stagePrograms('zb-h1', 2, 4)).toThrow(
      /^schedule "zb-h1" uses a split backward \(I\/W\), which the pipeline runtime does not run yet/,
    );
    expect(() => stagePrograms('interleaved-1f1b', 2, 4)).toThrow(/^schedule "interleaved-1f1b" uses virtual stages/);
  });
});
