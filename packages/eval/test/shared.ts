import { existsSync } from 'node:fs';
import path from 'node:path';

/** The shared data folder CI places beside the repository, and whether it is there. */
export const dataDir = path.resolve(__dirname, '../../../..', 'shared', 'datasets');
export const hasData = (sub: string) => existsSync(path.join(dataDir, sub));
/** The one-line reason tests give when they skip for a missing data set. */
export const noData = (sub: string) =>
  `skipped: ${path.join(dataDir, sub)} is absent (the shared data folder sits beside the repo in CI)`;
