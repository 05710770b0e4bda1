import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors } from './safetensors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'yuan-st-header-'));

/** A safetensors file built byte by byte: u64 little-endian header length, the header text as given, then `data`. */
function build(name: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: number): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLen ?? text.length));
  const file = path.join(dir, `${name}.safetensors`);
  writeFileSync(file, Buffer.concat([len, text, data]));
  return file;
}

const f32 = (...v: number[]): Uint8Array => new Uint8Array(Float32Array.from(v).buffer);
const w = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

/** The error openSafetensors gives for `file`: a YuanError with one line naming the file (and the tensor). */
async function failure(file: string): Promise<string> {
  const e = await openSafetensors(file).then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  expect(e, 'the file should be refused').toBeInstanceOf(Error);
  expect(e!.name).toBe('YuanError');
  expect(e!.message).not.toContain('\n');
  expect(e!.message.startsWith(`${file}: `)).toBe(true);
  return e!.message;
}

describe('safetensors header: every malformed header is a one-line error naming the file and the tensor', () => {
  const cases: Array<[string, unknown, Uint8Array, RegExp, number?]> = [
    ['no data_offsets', { w: { dtype: 'F32', shape: [2] } }, f32(1, 2), /tensor "w" has no data_offsets/],
    [
      'data_offsets not a pair',
      { w: { dtype: 'F32', shape: [2], data_offsets: [8] } },
      f32(1, 2),
      /tensor "w" has data_offsets \[8\], not \[begin, end\]/,
    ],
    [
      'negative offset',
      { w: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } },
      f32(1, 2),
      /tensor "w" has data_offsets \[-8,0\]/,
    ],
    [
      'fractional offset',
      { w: { dtype: 'F32', shape: [2], data_offsets: [0, 7.5] } },
      f32(1, 2),
      /tensor "w" has data_offsets \[0,7.5\]/,
    ],
    [
      'string offsets',
      { w: { dtype: 'F32', shape: [2], data_offsets: '0-8' } },
      f32(1, 2),
      /tensor "w" has data_offsets "0-8"/,
    ],
    [
      'end before begin',
      { w: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } },
      f32(1, 2),
      /tensor "w" has data_offsets \[8, 0\]: the end is before the begin/,
    ],
    [
      'offsets past the file',
      { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } },
      f32(1, 2),
      /truncated: tensor w ends at byte \d+ but the file has \d+/,
    ],
    [
      'overlapping offsets',
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      f32(1, 2, 3),
      /tensors a \[0,8\] and b \[4,12\] overlap/,
    ],
    [
      'shape not matching the byte size',
      { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
      f32(1, 2),
      /tensor w: shape \[3\] F32 needs 12 bytes but data_offsets \[0, 8\] span 8/,
    ],
    [
      'I64 shape not matching',
      { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 8] } },
      f32(1, 2),
      /tensor ids: shape \[2\] I64 needs 16 bytes/,
    ],
    ['no shape', { w: { dtype: 'F32', data_offsets: [0, 8] } }, f32(1, 2), /tensor "w" has no shape/],
    [
      'negative dimension',
      { w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } },
      f32(1, 2),
      /tensor "w" has shape \[-2\], not a list of non-negative integers/,
    ],
    ['no dtype', { w: { shape: [2], data_offsets: [0, 8] } }, f32(1, 2), /tensor "w" has no dtype/],
    [
      'dtype not a string',
      { w: { dtype: 4, shape: [2], data_offsets: [0, 8] } },
      f32(1, 2),
      /tensor "w" has dtype 4, not a string/,
    ],
    ['entry not an object', { w: null }, f32(1, 2), /header entry for tensor "w" is null, not an object/],
    ['entry a number', { w: 7 }, f32(1, 2), /header entry for tensor "w" is 7, not an object/],
    [
      'metadata not strings',
      { __metadata__: { format: 1 }, w },
      f32(1, 2),
      /__metadata__ is \{"format":1\}; expected an object of strings/,
    ],
    ['header a JSON array', [w], f32(1, 2), /header is not a JSON object of tensors/],
    ['header not JSON', '{"w": {"dtype": "F32",', f32(1, 2), /header is not valid JSON/],
    [
      'header length past the file',
      { w },
      f32(1, 2),
      /not a safetensors file or truncated \(header length 4096, file size \d+\)/,
      4096,
    ],
  ];
  it.each(cases)('%s', async (name, header, data, expected, headerLen) => {
    const message = await failure(build(name.replaceAll(' ', '-'), header, data, headerLen));
    expect(message).toMatch(expected);
  });
});

describe('safetensors header: tensors yuan does not read are listed, not refused', () => {
  it('opens a file with a 0-rank scalar, a 0-size tensor, an I64 buffer, an F64 and an unknown dtype beside a float tensor', async () => {
    const ids = new Uint8Array(new BigInt64Array([0n, 1n, 2n]).buffer);
    const data = Buffer.concat([f32(1.5, -2), f32(7), ids, new Uint8Array(8), new Uint8Array(3)]);
    const file = build(
      'extras',
      {
        __metadata__: { format: 'pt' },
        w,
        scalar: { dtype: 'F32', shape: [], data_offsets: [8, 12] },
        empty: { dtype: 'F32', shape: [0, 4], data_offsets: [12, 12] },
        position_ids: { dtype: 'I64', shape: [1, 3], data_offsets: [12, 36] },
        double: { dtype: 'F64', shape: [1], data_offsets: [36, 44] },
        packed: { dtype: 'Q4_K', shape: [6], data_offsets: [44, 47] },
      },
      data,
    );
    const st = await openSafetensors(file);
    try {
      expect([...st.entries.keys()].sort()).toEqual(['double', 'empty', 'packed', 'position_ids', 'scalar', 'w']);
      expect([...(await st.read('w'))]).toEqual([1.5, -2]);
      expect([...(await st.read('scalar'))]).toEqual([7]);
      expect([...(await st.read('empty'))]).toEqual([]);
      expect(st.entries.get('position_ids')).toMatchObject({ dtype: 'I64', shape: [1, 3], readable: false });
      expect(st.entries.get('packed')).toMatchObject({ dtype: 'Q4_K', readable: false });
      await expect(st.read('position_ids')).rejects.toThrow(
        `${file}: tensor position_ids has dtype I64; yuan reads weights as F32, F16 or BF16`,
      );
      await expect(st.read('packed')).rejects.toThrow(/tensor packed has dtype Q4_K/);
    } finally {
      await st.close();
    }
  });
});
