import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createReadStream } from 'node:fs';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FilterPlugin } from '@yuan/core';
import { runFilter } from '../src/index.js';

const PROSE =
  'The committee met on Tuesday to discuss the new library, and the members agreed that the reading room should stay open later in the evening. ';

function valid(i: number): string {
  return JSON.stringify({ id: `ok-${i}`, text: `${PROSE}Item number ${i} was noted. ${PROSE}` });
}

async function readLinesOf(file: string): Promise<string[]> {
  const out: string[] = [];
  for await (const l of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) out.push(l);
  return out;
}

describe('malformed input', () => {
  let dir: string;
  let input: string;
  const HUGE = 50 * 1024 * 1024;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'yuan-filter-bad-'));
    input = path.join(dir, 'in.jsonl');
    const ws = createWriteStream(input);
    const write = (b: string | Buffer) =>
      new Promise<void>((res) => (ws.write(b) ? res() : ws.once('drain', () => res())));
    await write(`${valid(0)}\n{"id": "broken", "text": "unterminated\n${valid(1)}\n{"id":"no-text","body":"x"}\n`);
    await write(`{"id":"num","text":42}\n[1,2,3]\n\n   \n${valid(2)}\r\n`);
    await write(
      Buffer.concat([
        Buffer.from('{"id":"bad-utf8","text":"abc '),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}\n'),
      ]),
    );
    await write('{"id":"huge","text":"');
    const block = 'x'.repeat(1 << 20);
    for (let i = 0; i < HUGE / block.length; i++) await write(block);
    await write(`"}\n${valid(3)}\n{"id":"ctrl","text":"${PROSE}\\u0000\\u0007 end"}\n${valid(4)}`);
    await new Promise<void>((res) => ws.end(res));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts every bad line, rejects it with its reason, and keeps every valid document', async () => {
    const out = path.join(dir, 'out.jsonl');
    const rej = path.join(dir, 'rej.jsonl');
    const report = await runFilter({
      inputs: [input],
      output: out,
      rejects: rej,
      configObject: { filters: ['normalize'] },
    });
    const kept = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id);
    expect(kept).toEqual(['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ctrl', 'ok-4']);
    const rejects = (await readLinesOf(rej)).map((l) => JSON.parse(l));
    const reasons = Object.fromEntries(rejects.map((r) => [r.reason, r]));
    expect(Object.keys(reasons).sort()).toEqual(
      [
        'input:invalid-json',
        'input:invalid-utf8',
        'input:line-too-long',
        'input:missing-text-field',
        'input:not-an-object',
        'input:text-not-string',
      ].sort(),
    );
    expect(reasons['input:line-too-long'].bytes).toBe(HUGE + '{"id":"huge","text":""}'.length);
    expect(reasons['input:line-too-long'].raw.length).toBe(HUGE + '{"id":"huge","text":""}'.length);
    expect(Buffer.from(reasons['input:invalid-utf8'].rawBase64, 'base64').includes(Buffer.from([0xff, 0xfe]))).toBe(
      true,
    );
    expect(reasons['input:invalid-json'].line).toBe(2);
    expect(report.input).toMatchObject({ documents: 6, malformed: 6, blank: 2 });
    expect(report.input.reasons['line-too-long'].count).toBe(1);
    expect(report.input.reasons['line-too-long'].examples[0].snippet.startsWith('{"id":"huge"')).toBe(true);
    const ctrl = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((r) => r.id === 'ctrl');
    expect(ctrl.text).not.toMatch(/[\u0000\u0007]/);
  });

  it('takes a larger line cap from the config and then keeps the long document', async () => {
    const out = path.join(dir, 'out-big.jsonl');
    const report = await runFilter({
      inputs: [input],
      output: out,
      configObject: {
        filters: [{ name: 'length', options: { maxChars: 100_000_000 } }],
        maxLineBytes: 64 * 1024 * 1024,
      },
    });
    expect(report.input.malformed).toBe(5);
    expect(report.result.kept).toBe(7);
  });

  it('reads gzip input and writes gzip output', async () => {
    const gz = path.join(dir, 'small.jsonl.gz');
    writeFileSync(gz, gzipSync(`${valid(10)}\n${valid(11)}\n`));
    const out = path.join(dir, 'small-out.jsonl.gz');
    await runFilter({ inputs: [gz], output: out, configObject: { filters: ['normalize'] } });
    expect(
      gunzipSync(readFileSync(out))
        .toString('utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    ).toEqual(['ok-10', 'ok-11']);
  });

  it('never leaves a partial output when a filter crashes', async () => {
    const out = path.join(dir, 'keep-me.jsonl');
    writeFileSync(out, 'previous result\n');
    const boom: FilterPlugin = {
      kind: 'filter',
      name: 'boom',
      description: 'throws on the third document',
      defaults: {},
      create: () => {
        let n = 0;
        return {
          apply: () => {
            if (++n === 3) throw new Error('boom');
            return { keep: true };
          },
        };
      },
    };
    await expect(
      runFilter({ inputs: [input], output: out, plugins: [boom], configObject: { filters: ['boom'] } }),
    ).rejects.toThrow('boom');
    expect(readFileSync(out, 'utf8')).toBe('previous result\n');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.includes('.partial-'))).toEqual([]);
  });

  it('takes a preset from a plugin module (kind filter-preset), with its steps looked up in the registry', async () => {
    const mod = path.join(dir, 'short-only.mjs');
    writeFileSync(
      mod,
      [
        'export const plugins = [',
        "  { kind: 'filter', name: 'drop-item-2', description: 'drops one id', defaults: {},",
        "    create: () => ({ apply: (d) => (d.id === 'ok-2' ? { keep: false, reason: 'item-2' } : { keep: true }) }) },",
        "  { kind: 'filter-preset', name: 'mine', description: 'length, then drop-item-2', defaults: {},",
        "    filters: [{ name: 'length' }, { name: 'drop-item-2' }] },",
        '];',
      ].join('\n'),
    );
    const clean = path.join(dir, 'clean.jsonl');
    writeFileSync(clean, [0, 1, 2, 3].map(valid).join('\n') + '\n');
    const out = path.join(dir, 'preset-out.jsonl');
    const report = await runFilter({ inputs: [clean], output: out, preset: 'mine', pluginModules: [mod] });
    expect(report.config.filters.map((s) => s.plugin)).toEqual(['length', 'drop-item-2']);
    expect(
      readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).id),
    ).toEqual(['ok-0', 'ok-1', 'ok-3']);
    await expect(runFilter({ inputs: [clean], output: out, preset: 'mine' })).rejects.toThrow(
      /unknown filter preset "mine" \(presets: yuan-zh-en\)/,
    );
  });

  it('rejects bad options with a message naming the field', async () => {
    const out = path.join(dir, 'x.jsonl');
    await expect(runFilter({ inputs: [input], output: out, set: ['options.minhash.numPerm=0'] })).rejects.toThrow(
      /minhash.*numPerm = 0; expected an integer >= 1/,
    );
    await expect(runFilter({ inputs: [input], output: out, configObject: { filters: ['nope'] } })).rejects.toThrow(
      /unknown filter plugin "nope"/,
    );
    await expect(runFilter({ inputs: [input], output: out, shard: '2/2' })).rejects.toThrow(/--shard "2\/2"/);
    await expect(runFilter({ inputs: [path.join(dir, 'missing.jsonl')], output: out })).rejects.toThrow(
      /input file not found/,
    );
    expect(existsSync(out)).toBe(false);
  });
});
