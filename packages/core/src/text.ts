/**
 * `s` with every regular-expression syntax character (`^ $ \ . * + ? ( ) [ ] { } |`) escaped, so that `new RegExp`
 * matches it literally, with or without the `u` flag (which forbids escaping anything else, such as `-`, outside a
 * character class).
 */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
