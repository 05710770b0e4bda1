import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The layout of a training run folder, as far as opening a model needs it: checkpoints are `checkpoint-<step>` folders
 * (step zero-padded to 8 digits), each complete only once its `manifest.json` is written (last) and every file it lists
 * has the size it records. `@yuan/train` writes them; the local model adapter and `--model RUN_DIR` pick the newest
 * complete one.
 */

/** `manifest.json` of a checkpoint, written last: every other file with its size (bytes) and SHA-256 (hex). */
export interface CheckpointManifest {
  format: 'yuan-checkpoint-1';
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

const NAME = /^checkpoint-(\d+)$/;

/** The file name of a checkpoint's manifest (`manifest.json`). */
export const CHECKPOINT_MANIFEST = 'manifest.json';

/** The folder name of the checkpoint of step `step`: `checkpoint-00000042`. */
export function checkpointFolderName(step: number): string {
  return `checkpoint-${String(step).padStart(8, '0')}`;
}

/** Whether `name` (a folder's base name) is a checkpoint folder's name (`checkpoint-<digits>`). */
export function isCheckpointFolderName(name: string): boolean {
  return NAME.test(name);
}

/** The manifest of checkpoint folder `dir` when it is complete (present, valid, every file its size), else why not (one line). */
export function readCheckpointManifest(dir: string): CheckpointManifest | string {
  const file = path.join(dir, CHECKPOINT_MANIFEST);
  if (!existsSync(file)) return `${dir}: no ${CHECKPOINT_MANIFEST} (the checkpoint was not completed)`;
  let m: CheckpointManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return `${file}: not valid JSON (${(e as Error).message})`;
  }
  if (m?.format !== 'yuan-checkpoint-1' || typeof m.files !== 'object')
    return `${file}: not a yuan checkpoint manifest`;
  for (const [name, f] of Object.entries(m.files)) {
    const p = path.join(dir, name);
    if (!existsSync(p)) return `${dir}: ${name} is missing`;
    const bytes = statSync(p).size;
    if (bytes !== f.bytes) return `${dir}: ${name} has ${bytes} bytes; the manifest says ${f.bytes}`;
  }
  return m;
}

/** Why `dir` is not a complete training checkpoint, or undefined when it is (manifest present, every file its size). */
export function checkpointProblem(dir: string): string | undefined {
  const m = readCheckpointManifest(dir);
  return typeof m === 'string' ? m : undefined;
}

/** Complete checkpoint folders in a run folder, oldest first: `checkpoint-N` with a manifest whose files all match it. */
export function listCheckpoints(runDir: string): string[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((d) => NAME.test(d) && checkpointProblem(path.join(runDir, d)) === undefined)
    .sort()
    .map((d) => path.join(runDir, d));
}
