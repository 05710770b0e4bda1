import { ConfigError } from '@yuan/core';

/** Merges options over defaults, rejecting unknown keys and values whose type differs from the default's. */
export function checkOptions<O extends object>(evaluator: string, defaults: O, given: Record<string, unknown>): O {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(given)) {
    if (!(key in defaults)) {
      throw new ConfigError(
        `${evaluator}: unknown option "${key}" (known: ${Object.keys(defaults).join(', ') || 'none'})`,
      );
    }
    const expected = (defaults as Record<string, unknown>)[key];
    if (expected !== undefined && expected !== null && typeof value !== typeof expected) {
      throw new ConfigError(`${evaluator}: option ${key} = ${JSON.stringify(value)}: expected a ${typeof expected}`);
    }
    out[key] = value;
  }
  return out as O;
}
