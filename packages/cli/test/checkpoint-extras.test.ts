import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { shared, yuan } from './run.js';

const fixture = path.join(shared, 'fixtures/yuan2-tiny');
const tmp = mkdtempSync(path.join(tmpdir(), 'yuan-cli-extras-'));

/** A copy of the fixture whose model.safetensors is rewritten byte by byte with `edit` applied to its header and extra data appended. */
function variant(
  name: string,
  edit: (header: Record<string, Record<string, unknown>>, dataLen: number) => Buffer,
): string {
  const dir = path.join(tmp, name);
  cpSync(fixture, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const data = bytes.subarray(8 + n);
  const extra = edit(header, data.length);
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeFileSync(file, Buffer.concat([len, text, data, extra]));
  return dir;
}

describe.skipIf(!existsSync(fixture))(
  'yuan on checkpoints with extra or malformed tensors (needs ../shared, which CI has)',
  () => {
    it('generate ignores unused tensors, says which on stderr, and generates what the clean checkpoint does', async () => {
      const dir = variant('extras', (h, at) => {
        h['logit_scale'] = { dtype: 'F32', shape: [2], data_offsets: [at, at + 8] };
        h['model.position_ids'] = { dtype: 'I64', shape: [1], data_offsets: [at + 8, at + 16] };
        return Buffer.alloc(16);
      });
      const args = ['--prompt-ids', '1,2,3', '--max-new-tokens', '4', '--temperature', '0', '--json'];
      const clean = await yuan('generate', '--model', fixture, ...args);
      const r = await yuan('generate', '--model', dir, ...args);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toBe(clean.out);
      expect(r.err).toContain(`${dir}: ignored 2 tensors the model does not use: logit_scale, model.position_ids`);
    });

    it('a header entry without data_offsets is a one-line error naming the file and the tensor', async () => {
      let name = '';
      const dir = variant('no-offsets', (h) => {
        name = Object.keys(h).find((k) => k !== '__metadata__')!;
        delete h[name].data_offsets;
        return Buffer.alloc(0);
      });
      const r = await yuan('generate', '--model', dir, '--prompt-ids', '1', '--max-new-tokens', '1');
      expect(r.code).not.toBe(0);
      expect(r.err).not.toMatch(/TypeError|\n\s+at /);
      expect(r.err).toContain(
        `${path.join(dir, 'model.safetensors')}: header entry for tensor "${name}" has no data_offsets`,
      );
    });
  },
);
