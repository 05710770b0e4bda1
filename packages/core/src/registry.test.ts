import { describe, expect, it } from 'vitest';
import { PluginRegistry } from './registry.js';

const plugin = (name: string) => ({ kind: 'thing', name, description: name, defaults: {} });

describe('PluginRegistry', () => {
  it('registers, looks up by kind and name, and lists sorted', () => {
    const r = new PluginRegistry().register(plugin('b')).register(plugin('a'));
    expect(r.get('thing', 'a').name).toBe('a');
    expect(r.names('thing')).toEqual(['a', 'b']);
    expect(r.list().map((p) => p.name)).toEqual(['a', 'b']);
    expect(r.has('thing', 'c')).toBe(false);
  });

  it('rejects duplicate names, naming the plugin and what exists', () => {
    const r = new PluginRegistry().register(plugin('a'), 'pkg-one');
    expect(() => r.register(plugin('a'), 'pkg-two')).toThrow(
      /^plugin thing:a from pkg-two is already registered from pkg-one \(registered thing plugins: a\)$/,
    );
    expect(r.sourceOf('thing', 'a')).toBe('pkg-one');
    // the same object again (a module reached as a package name and as a path) is no second plugin
    const same = plugin('s');
    r.register(same, 'pkg-one').register(same, '/abs/pkg-one/index.js');
    expect([r.names('thing'), r.sourceOf('thing', 's')]).toEqual([['a', 's'], 'pkg-one']);
  });

  it('unknown names list the registered ones', () => {
    const r = new PluginRegistry().register(plugin('mha')).register(plugin('lfa'));
    expect(() => r.get('thing', 'nope')).toThrow('unknown thing plugin "nope" (registered: lfa, mha)');
    expect(() => r.get('other', 'x')).toThrow('(registered: none)');
  });

  it('refuses registration after freeze', () => {
    const r = new PluginRegistry().freeze();
    expect(r.isFrozen).toBe(true);
    expect(() => r.register(plugin('a'))).toThrow(/frozen/);
  });
});
