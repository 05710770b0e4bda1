// Every choice by name is a registry lookup, so a package from outside the workspace can add what the built-ins are: a
// transport (wrapping tcp) that trains --dp 2, a tensor backend chosen by its priority, a preset found by --preset, and a
// tokenizer that data prepare's worker threads open from their own registry. Nothing in yuan knows any of them.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, rankFreeEnv, series, tinyRun } from './parallel-run.js';
import { repoRoot } from './run.js';

const project = mkdtempSync(path.join(tmpdir(), 'yuan-plugin-kinds-'));
const bin = path.join(repoRoot, 'packages/cli/dist/bin.js');
afterAll(() => rmSync(project, { recursive: true, force: true }));

function run(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: project, encoding: 'utf8', env: rankFreeEnv() });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

// A transport package: tcp underneath, counting the messages each rank sends; each rank appends its count on close.
const TRANSPORT_PACKAGE = {
  'package.json': JSON.stringify({
    name: 'yuan-transport-counting',
    version: '0.0.0',
    type: 'module',
    exports: { '.': './index.js' },
    peerDependencies: { '@yuan/comm': '*' },
  }),
  'index.js': `import { appendFileSync } from 'node:fs';
import { tcpTransport } from '@yuan/comm';

export const countingTransport = {
  ...tcpTransport,
  name: 'counting-tcp',
  description: 'tcp, counting the messages each rank sends (example third-party transport)',
  async connect(options) {
    const transport = await tcpTransport.connect(options);
    const send = transport.send.bind(transport);
    const close = transport.close.bind(transport);
    let sent = 0;
    let closed = false;
    transport.send = (...args) => {
      sent++;
      return send(...args);
    };
    transport.close = async () => {
      if (!closed) appendFileSync(new URL('./counts.log', import.meta.url), 'rank ' + options.rank + ' sent ' + sent + '\\n');
      closed = true;
      return close();
    };
    return transport;
  },
};

export const plugins = [countingTransport];
`,
};

// A backend plugin: TensorFlow.js's cpu backend under its own name, with a priority above every built-in backend.
const BACKEND = `import { tf } from '@yuan/tensor';
export const plugins = [{
  kind: 'backend',
  name: 'test-cpu',
  description: 'the cpu backend under another name (example third-party backend)',
  defaults: {},
  priority: 10,
  async activate() {
    if (!(await tf.setBackend('cpu'))) throw new Error('cpu did not initialise');
    return { threads: 1, library: 'test BLAS 1.0 (serial)' };
  },
}];
`;

// A tokenizer plugin without any import: UTF-8 bytes, each id shifted by one (so its ids differ from the bytes tokenizer's).
const TOKENIZER = `const special = { eod: 257, sep: 258, pad: 259 };
export const plugins = [{
  kind: 'tokenizer',
  name: 'shifted-bytes',
  description: 'UTF-8 bytes + 1 (example third-party tokenizer)',
  defaults: {},
  async load() {
    return {
      name: 'shifted-bytes',
      vocabSize: 264,
      special,
      encode: (text) => [...Buffer.from(text.replaceAll('<eod>', ''), 'utf8')].map((b) => b + 1).concat(text.includes('<eod>') ? [special.eod] : []),
      decode: (ids) => Buffer.from(ids.filter((i) => i > 0 && i < 257).map((i) => i - 1)).toString('utf8'),
      pieces: (ids) => ids.map(String),
    };
  },
}];
`;

beforeAll(() => {
  const nm = path.join(project, 'node_modules');
  mkdirSync(path.join(nm, '@yuan'), { recursive: true });
  for (const p of ['core', 'comm', 'tensor'])
    symlinkSync(path.join(repoRoot, 'packages', p), path.join(nm, '@yuan', p));
  mkdirSync(path.join(nm, 'yuan-transport-counting'));
  for (const [file, text] of Object.entries(TRANSPORT_PACKAGE))
    writeFileSync(path.join(nm, 'yuan-transport-counting', file), text);
  cpSync(path.join(repoRoot, 'examples/attention-mqa'), path.join(nm, 'yuan-attention-mqa'), {
    recursive: true,
    filter: (src) => !src.includes('node_modules'),
  });
  mkdirSync(path.join(project, 'plugins'));
  writeFileSync(path.join(project, 'plugins/backend.js'), BACKEND);
  writeFileSync(path.join(project, 'plugins/tokenizer.js'), TOKENIZER);
  writeFileSync(
    path.join(project, 'corpus.txt'),
    Array.from(
      { length: 60 },
      (_, i) => `Paragraph ${i}: a third-party transport carries the gradients, line ${i * 3}.`,
    ).join('\n\n'),
  );
  expect(
    run('data', 'prepare', 'corpus.txt', '--tokenizer', 'bytes', '--output', 'data', '--valid-fraction', '0.1').code,
  ).toBe(0);
});

describe('plugins of every kind from outside the workspace', () => {
  it('a transport package wrapping tcp trains --dp 2 with the losses of --transport tcp, and its ranks used it', () => {
    const tiny = tinyRun(path.join(project, 'data'));
    const tcp = run(
      'train',
      ...tiny,
      '--steps',
      '3',
      '--microbatches',
      '2',
      '--dp',
      '2',
      '--transport',
      'tcp',
      '--out',
      'tcp',
    );
    expect(tcp.code, tcp.err).toBe(0);
    const counting = run(
      'train',
      ...tiny,
      '--steps',
      '3',
      '--microbatches',
      '2',
      '--dp',
      '2',
      '--plugin',
      'yuan-transport-counting',
      '--transport',
      'counting-tcp',
      '--out',
      'counting',
    );
    expect(counting.code, counting.err).toBe(0);
    expectClose(series(path.join(project, 'counting'), 'loss'), series(path.join(project, 'tcp'), 'loss'));
    const counts = readFileSync(path.join(project, 'node_modules/yuan-transport-counting/counts.log'), 'utf8')
      .trim()
      .split('\n');
    expect(counts.map((l) => l.replace(/\d+$/, 'N')).sort()).toEqual(['rank 0 sent N', 'rank 1 sent N']);
    for (const l of counts) expect(Number(/(\d+)$/.exec(l)![1])).toBeGreaterThan(0);
    // the checkpoint records the plugin, and the name outside the registry is an error listing the registered ones
    expect(
      JSON.parse(readFileSync(path.join(project, 'counting/checkpoint-00000003/config.json'), 'utf8')).yuan.plugins,
    ).toEqual(['yuan-transport-counting']);
    const unknown = run(
      'train',
      ...tiny,
      '--steps',
      '1',
      '--microbatches',
      '2',
      '--dp',
      '2',
      '--transport',
      'counting-tcp',
      '--out',
      'x',
    );
    expect(unknown.err.trim()).toBe(
      'error: --transport "counting-tcp" is not a registered transport (transports: tcp, threads)',
    );
  });

  it('a backend plugin is listed with its priority and chosen when it is the highest that loads', () => {
    const env = run('env', '--plugin', './plugins/backend.js', '--json');
    expect(env.code, env.err).toBe(0);
    const info = JSON.parse(env.out) as {
      backend: string;
      library?: string;
      backends: { name: string; priority: number; status: string; source: string }[];
    };
    expect(info.backend).toBe('test-cpu');
    // the library the chosen backend's activation named (the native backend: its BLAS build)
    expect(info.library).toBe('test BLAS 1.0 (serial)');
    expect(run('env', '--plugin', './plugins/backend.js').out).toMatch(/^library +test BLAS 1\.0 \(serial\)$/m);
    expect(info.backends[0]).toEqual({
      name: 'test-cpu',
      priority: 10,
      source: path.join(project, 'plugins/backend.js'),
      status: 'chosen',
      detail: expect.stringMatching(/example third-party backend/),
    });
    expect(info.backends.map((b) => b.priority)).toEqual(
      [...info.backends.map((b) => b.priority)].sort((a, b) => b - a),
    );
    expect(info.backends.find((b) => b.name === 'cpu')).toMatchObject({ priority: 1, status: 'not tried' });
    const text = run('env', '--plugin', './plugins/backend.js', '--backend', 'cpu');
    expect(text.out).not.toMatch(/^library/m); // the cpu backend names none
    expect(text.out).toMatch(/^\s+not tried\s+test-cpu\s+10\s+\S*backend\.js: the cpu backend under another name/m);
    expect(text.out).toMatch(/^\s+chosen\s+cpu\s+1\s+@yuan\/tensor: pure JavaScript/m);
    const list = JSON.parse(
      run('plugins', 'list', '--kind', 'backend', '--plugin', './plugins/backend.js', '--json').out,
    ) as { name: string; priority?: number }[];
    expect(list.find((p) => p.name === 'test-cpu')?.priority).toBe(10);
    expect(run('env', '--backend', 'test-cpu').err.trim()).toMatch(
      /^error: unknown backend "test-cpu" \(backends: .*cpu\)$/,
    );
  });

  it('a preset shipped by a plugin package is found by --preset once the package is loaded', () => {
    const shown = run('presets', 'show', 'tiny-mqa', '--plugin', 'yuan-attention-mqa', '--json');
    expect(shown.code, shown.err).toBe(0);
    expect(JSON.parse(shown.out).config).toMatchObject({
      preset: 'tiny-mqa',
      attention: { name: 'mqa', options: { kvHeads: 1 } },
    });
    const listed = JSON.parse(run('presets', 'list', '--plugin', 'yuan-attention-mqa', '--json').out) as {
      name: string;
      source: string;
    }[];
    expect(listed.find((p) => p.name === 'tiny-mqa')?.source).toBe('yuan-attention-mqa');
    expect(listed.find((p) => p.name === 'tiny-lfa')?.source).toBe('@yuan/core');
    const trained = run(
      'train',
      '--preset',
      'tiny-mqa',
      '--plugin',
      'yuan-attention-mqa',
      '--set',
      'model.numLayers=1',
      '--set',
      'model.hiddenSize=32',
      '--set',
      'model.ffnSize=64',
      '--set',
      'train.seqLength=16',
      '--set',
      'train.microBatchSize=2',
      '--data',
      'data',
      '--steps',
      '1',
      '--out',
      'mqa',
    );
    expect(trained.code, trained.err).toBe(0);
    expect(run('train', '--preset', 'tiny-mqa', '--data', 'data', '--steps', '1', '--out', 'y').err.trim()).toMatch(
      /^error: unknown preset plugin "tiny-mqa" \(registered: tiny-lfa, .*\)$/,
    );
  });

  it('data prepare --workers 2 opens a third-party tokenizer in each worker from its own registry: the same folder as one thread', () => {
    const corpus = path.join(project, 'big.txt');
    writeFileSync(
      corpus,
      Array.from({ length: 3000 }, (_, i) => `Document ${i}: tokenized by a plugin in worker threads.`).join('\n\n'),
    );
    const one = run(
      'data',
      'prepare',
      'big.txt',
      '--plugin',
      './plugins/tokenizer.js',
      '--tokenizer',
      'shifted-bytes',
      '--output',
      'one',
      '--workers',
      '1',
    );
    expect(one.code, one.err).toBe(0);
    const two = run(
      'data',
      'prepare',
      'big.txt',
      '--plugin',
      './plugins/tokenizer.js',
      '--tokenizer',
      'shifted-bytes',
      '--output',
      'two',
      '--workers',
      '2',
    );
    expect(two.code, two.err).toBe(0);
    for (const f of ['train.bin', 'index.json']) expect(existsSync(path.join(project, 'two', f)), f).toBe(true);
    expect(
      readFileSync(path.join(project, 'two/train.bin')).equals(readFileSync(path.join(project, 'one/train.bin'))),
    ).toBe(true);
    expect(
      readFileSync(path.join(project, 'two/train.bin')).equals(readFileSync(path.join(project, 'data/train.bin'))),
    ).toBe(false);
    expect(JSON.parse(readFileSync(path.join(project, 'two/index.json'), 'utf8')).tokenizer).toEqual({
      name: 'shifted-bytes',
    });
  });
});
