/**
 * The MinHash inner loop (for each permutation seed, the minimum over shingles of fmix32(shingle ^ seed)) as a small
 * WebAssembly module with 128-bit SIMD: eight permutations per pass over the shingles, four per vector. The module
 * is assembled here from its instructions (no files, no dependencies); when the runtime lacks WebAssembly SIMD,
 * `simdMinHash` returns undefined and callers use the scalar loop, which computes the same values.
 */

const C1 = [0x6b, 0xca, 0xeb, 0x85]; // 0x85ebca6b, little-endian
const C2 = [0x35, 0xae, 0xb2, 0xc2]; // 0xc2b2ae35

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const str = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))];

// Opcodes.
const GET = 0x20;
const SET = 0x21;
const TEE = 0x22;
const I32 = (v: number) => [0x41, ...uleb(v)]; // only small non-negative constants (< 64) are used
const SIMD = (op: number) => [0xfd, ...uleb(op)];
const LOAD = (offset: number) => [...SIMD(0x00), 2, ...uleb(offset)];
const LOAD32_SPLAT = [...SIMD(0x09), 2, 0];
const STORE = (offset: number) => [...SIMD(0x0b), 2, ...uleb(offset)];
const CONST = (bytes: number[]) => [...SIMD(0x0c), ...bytes, ...bytes, ...bytes, ...bytes];
const XOR = SIMD(0x51);
const SHR_U = SIMD(0xad);
const MUL = SIMD(0xb5);
const MIN_U = SIMD(0xb7);

// Locals: 0 shingles, 1 count, 2 seeds, 3 perms (a multiple of 8), 4 out (byte addresses, 16-aligned);
// 5 p (byte offset into seeds/out), 6 at (address of the current shingle), 7 end; v128: 8 s0, 9 s1, 10 m0, 11 m1, 12 x, 13 h.
const mix = (seed: number, min: number) => [
  GET,
  12,
  GET,
  seed,
  ...XOR,
  TEE,
  13,
  GET,
  13,
  ...I32(16),
  ...SHR_U,
  ...XOR,
  ...CONST(C1),
  ...MUL,
  TEE,
  13,
  GET,
  13,
  ...I32(13),
  ...SHR_U,
  ...XOR,
  ...CONST(C2),
  ...MUL,
  TEE,
  13,
  GET,
  13,
  ...I32(16),
  ...SHR_U,
  ...XOR,
  GET,
  min,
  ...MIN_U,
  SET,
  min,
];

const body = [
  2,
  3,
  0x7f,
  6,
  0x7b, // locals: 3 × i32, 6 × v128
  // end = shingles + 4 * count; perms *= 4 (bytes)
  GET,
  0,
  GET,
  1,
  ...I32(2),
  0x74,
  0x6a,
  SET,
  7,
  GET,
  3,
  ...I32(2),
  0x74,
  SET,
  3,
  0x02,
  0x40,
  0x03,
  0x40, // block, loop over p
  GET,
  5,
  GET,
  3,
  0x4f,
  0x0d,
  1, // p >= perms: done
  GET,
  2,
  GET,
  5,
  0x6a,
  ...LOAD(0),
  SET,
  8,
  GET,
  2,
  GET,
  5,
  0x6a,
  ...LOAD(16),
  SET,
  9,
  ...CONST([0xff, 0xff, 0xff, 0xff]),
  TEE,
  10,
  SET,
  11,
  GET,
  0,
  SET,
  6,
  0x02,
  0x40,
  0x03,
  0x40, // block, loop over shingles
  GET,
  6,
  GET,
  7,
  0x4f,
  0x0d,
  1, // at >= end: done
  GET,
  6,
  ...LOAD32_SPLAT,
  SET,
  12,
  ...mix(8, 10),
  ...mix(9, 11),
  GET,
  6,
  ...I32(4),
  0x6a,
  SET,
  6,
  0x0c,
  0,
  0x0b,
  0x0b, // br loop, end loop, end block
  GET,
  4,
  GET,
  5,
  0x6a,
  GET,
  10,
  ...STORE(0),
  GET,
  4,
  GET,
  5,
  0x6a,
  GET,
  11,
  ...STORE(16),
  GET,
  5,
  ...I32(32),
  0x6a,
  SET,
  5,
  0x0c,
  0,
  0x0b,
  0x0b,
  0x0b, // end function
];

const MODULE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
  ...section(3, [1, 0]),
  ...section(5, [1, 0, 1]),
  ...section(7, [2, ...str('m'), 2, 0, ...str('s'), 0, 0]),
  ...section(10, [1, ...uleb(body.length), ...body]),
]);

/** The parts of the WebAssembly API used here (the package compiles without the DOM library's types). */
interface Wasm {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** Computes a MinHash signature: `(shingles, out)` fills `out` with, per seed, the minimum of fmix32(shingle ^ seed). */
export type SignatureKernel = (shingles: Uint32Array, count: number, out: Uint32Array) => void;

/** The SIMD kernel for these permutation seeds, or undefined without WebAssembly SIMD. */
export function simdMinHash(seeds: Uint32Array): SignatureKernel | undefined {
  const wasm = (globalThis as { WebAssembly?: Wasm }).WebAssembly;
  let exports: Record<string, unknown>;
  try {
    if (!wasm || !wasm.validate(MODULE)) return undefined;
    exports = new wasm.Instance(new wasm.Module(MODULE), {}).exports;
  } catch {
    return undefined;
  }
  const memory = exports.m as WasmMemory;
  const run = exports.s as (shingles: number, count: number, seeds: number, perms: number, out: number) => void;
  const perms = Math.ceil(seeds.length / 8) * 8;
  const seedsAt = 0;
  const outAt = perms * 4;
  const shinglesAt = outAt + perms * 4;
  let view = new Uint32Array(memory.buffer);
  view.set(seeds, seedsAt / 4);
  return (shingles, count, out) => {
    const need = shinglesAt + count * 4;
    if (need > memory.buffer.byteLength) {
      memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
      view = new Uint32Array(memory.buffer);
    }
    view.set(count === shingles.length ? shingles : shingles.subarray(0, count), shinglesAt / 4);
    run(shinglesAt, count, seedsAt, perms, outAt);
    for (let p = 0; p < out.length; p++) out[p] = view[outAt / 4 + p];
  };
}
