import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPluginModule, modulePlugins, moduleRegistry, registerPluginModules } from './plugin-loader.js';
import { PluginRegistry } from './registry.js';

const dir = mkdtempSync(path.join(tmpdir(), 'yuan-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const thing = (name: string) => `{ kind: 'thing', name: '${name}', description: 'a ${name}', defaults: {} }`;
function module(name: string, source: string): string {
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(file, source);
  return file;
}

describe('plugin modules declare their plugins in one named export, `plugins`', () => {
  it('registers exactly the `plugins` list under the module as source, ignoring other plugin-shaped exports', async () => {
    const file = module(
      'two',
      `export const stray = ${thing('stray')};\nexport const plugins = [${thing('a')}, ${thing('b')}];\n`,
    );
    const registry = await registerPluginModules(new PluginRegistry(), [file]);
    expect(registry.names('thing')).toEqual(['a', 'b']);
    expect(registry.sourceOf('thing', 'a')).toBe(file);
    // a file: URL names the same module, with the same source
    expect((await loadPluginModule(pathToFileURL(file).href)).map((p) => p.name)).toEqual(['a', 'b']);
    await registerPluginModules(registry, [pathToFileURL(file).href]); // the same module again: the same objects, nothing new
    expect(registry.names('thing')).toEqual(['a', 'b']);
    const other = module('other', `export const plugins = [${thing('a')}];\n`);
    await expect(registerPluginModules(registry, [other])).rejects.toThrow(
      `plugin thing:a from ${other} is already registered from ${file}`,
    );
  });

  it('a module without a well-formed `plugins` export is a one-line error naming it and what is wrong', async () => {
    const none = module('none', `export const lonely = ${thing('lonely')};\n`);
    await expect(loadPluginModule(none)).rejects.toThrow(
      `plugin module "${none}" has no \`plugins\` export (declare them as: export const plugins = [plugin, ...])`,
    );
    await expect(loadPluginModule(module('object', `export const plugins = ${thing('x')};\n`))).rejects.toThrow(
      /its `plugins` export is object, not an array of plugins$/,
    );
    await expect(loadPluginModule(module('empty', 'export const plugins = [];\n'))).rejects.toThrow(
      /declares no plugin \(its `plugins` array is empty\)$/,
    );
    await expect(
      loadPluginModule(
        module(
          'bad',
          `export const plugins = [${thing('ok')}, { kind: 'thing', name: 'no-description', defaults: {} }];\n`,
        ),
      ),
    ).rejects.toThrow(
      /: plugins\[1\] is not a plugin \(an object with a string kind, name and description, and defaults\)$/,
    );
    await expect(loadPluginModule(path.join(dir, 'missing.mjs'))).rejects.toThrow(/^plugin module not found: /);
  });

  it("moduleRegistry is a frozen registry of one module's plugins", () => {
    const r = moduleRegistry(
      { plugins: modulePlugins({ plugins: [{ kind: 'thing', name: 'x', description: 'x', defaults: {} }] }, 'test') },
      'pkg',
    );
    expect([r.isFrozen, r.names('thing'), r.sourceOf('thing', 'x')]).toEqual([true, ['x'], 'pkg']);
  });
});
