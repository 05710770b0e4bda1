import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, shared, yuan } from './run.js';

// yuan generate over stored weights: a Hugging Face folder as stored, and a preset's random weights in a chosen format.
const fixture = path.join(shared, 'fixtures/yuan2-tiny');
const native = existsSync(path.resolve(__dirname, '../../tensor-native/build/Release/yuan_native.node'));

describe.skipIf(!existsSync(fixture) || !native)(
  'yuan generate with weight formats (needs ../shared and the native addon)',
  () => {
    it('--model on the fixture folder gives its greedy continuation on the native decoder', async () => {
      const expected = JSON.parse(readFileSync(path.join(fixture, 'expected.json'), 'utf8'));
      const g = expected.generations[2];
      const r = await yuan(
        'generate',
        '--model',
        fixture,
        '--backend',
        'native',
        '--prompt-ids',
        g.prompt.join(','),
        '--max-new-tokens',
        String(g.greedy.length),
        '--json',
      );
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out).ids).toEqual(g.greedy);
    });

    it('--preset with --weights int4 decodes a random model in that format; bad uses are one-line errors', async () => {
      const r = await yuan(
        'generate',
        '--preset',
        'tiny-lfa',
        '--weights',
        'int4',
        '--backend',
        'native',
        '--prompt-ids',
        '1,2',
        '--max-new-tokens',
        '3',
        '--json',
      );
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out).ids).toHaveLength(3);
      const bad = await yuan(
        'generate',
        '--preset',
        'tiny-lfa',
        '--weights',
        'int3',
        '--backend',
        'native',
        '--prompt-ids',
        '1',
        '--max-new-tokens',
        '1',
      );
      expect(bad.code).not.toBe(0);
      expect(bad.err).toMatch(/unknown weight-format plugin "int3" \(registered: bf16, fp32, int4, int8\)/);
      const model = await yuan(
        'generate',
        '--model',
        fixture,
        '--weights',
        'bf16',
        '--prompt-ids',
        '1',
        '--max-new-tokens',
        '1',
      );
      expect(model.code).toBe(2);
      expect(model.err).toMatch(/--weights FORMAT applies to a --preset model/);
    });

    it('yuan serve --preset --weights int4 serves the native decoder: the greedy text of yuan generate', async () => {
      const args = ['--preset', 'tiny-lfa', '--weights', 'int4', '--backend', 'native', '--seed', '3'];
      const g = await yuan('generate', ...args, '--prompt', 'hello', '--max-new-tokens', '6', '--json');
      expect(g.code, g.err).toBe(0);
      const server = spawn(
        process.execPath,
        [path.join(repoRoot, 'packages/cli/dist/bin.js'), 'serve', ...args, '--port', '0'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let out = '';
          server.stdout!.on('data', (d) => {
            out += d;
            const m = /on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(out);
            if (m) resolve(m[1]);
          });
          server.once('exit', (code) => reject(new Error(`yuan serve exited with ${code}`)));
        });
        const ask = async () => {
          const r = await fetch(`${url}/v1/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'tiny-lfa', prompt: 'hello', max_tokens: 6, temperature: 0 }),
          });
          return ((await r.json()) as { choices: { text: string }[] }).choices[0].text;
        };
        // three at once (one batch) and each the text that generate gives
        const texts = await Promise.all([ask(), ask(), ask()]);
        expect(texts).toEqual(Array(3).fill(JSON.parse(g.out).text));
      } finally {
        server.kill();
      }
    });
  },
);
