import { ConfigError } from '@yuan/core';

/** Limits of one sandboxed run. Defaults in DEFAULT_LIMITS. */
export interface SandboxLimits {
  /** Wall-clock limit; the whole process tree is killed when it passes. */
  timeoutMs: number;
  /** Address-space limit (RLIMIT_AS) of the program. */
  memoryBytes: number;
  /** Processes the program may have at once (RLIMIT_NPROC, counted inside its own user namespace). */
  processes: number;
  /** Largest file the program may write (RLIMIT_FSIZE). */
  fileBytes: number;
  /** Size of the tmpfs work directory (namespace mode). */
  diskBytes: number;
  /** Open file descriptors (RLIMIT_NOFILE). */
  openFiles: number;
  /** Bytes of stdout and of stderr kept; the rest is counted and dropped. */
  outputBytes: number;
}

/** Defaults: 3 s, 1 GiB address space, 16 processes, 16 MiB files, 64 MiB work dir, 64 fds, 16 KiB of output. */
export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 3000,
  memoryBytes: 1024 ** 3,
  processes: 16,
  fileBytes: 16 * 1024 ** 2,
  diskBytes: 64 * 1024 ** 2,
  openFiles: 64,
  outputBytes: 16 * 1024,
};

/** Merges partial limits over the defaults; a non-positive or non-integer value is an error naming the field. */
export function resolveLimits(partial: Partial<SandboxLimits> = {}): SandboxLimits {
  const merged = { ...DEFAULT_LIMITS, ...partial };
  for (const [key, value] of Object.entries(merged)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new ConfigError(`sandbox limit ${key} = ${JSON.stringify(value)}: expected a positive integer`);
    }
  }
  return merged;
}
