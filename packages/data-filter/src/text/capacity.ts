/**
 * The length a growable scratch array of `length` elements takes to hold `needed`: `length` doubled until it is at
 * least `needed` (`length` itself when it already is). Doubling keeps the number of reallocations logarithmic.
 */
export function grownLength(length: number, needed: number): number {
  let size = Math.max(1, length);
  while (size < needed) size *= 2;
  return size;
}
