/**
 * Test helper, the one place tests pick an attention plugin by name (imported by path from the tests of @yuan/model,
 * @yuan/serve, @yuan/train, @yuan/parallel-pipeline and packages/integration-tests): the built-in attention plugins
 * `mha`, `lfa` and `lpa` in a frozen registry, as a run builds it, and a lookup over it (with `all`, so checkpoint
 * import can recognize weights).
 */
import { lfaAttention } from '@yuan/attention-lfa';
import { lpaAttention } from '@yuan/attention-lpa';
import { PluginRegistry } from '@yuan/core';
import { mhaAttention } from '../src/mha.js';
import { attentionLookup } from '../src/plugins.js';

/** The built-in attention plugins, registered under their packages' names and frozen. */
export const builtinAttentions = new PluginRegistry()
  .register(mhaAttention, '@yuan/model')
  .register(lfaAttention as never, '@yuan/attention-lfa')
  .register(lpaAttention as never, '@yuan/attention-lpa')
  .freeze();

/** The built-in attention plugin of that name (an unknown name lists the registered ones); `all()` lists them. */
export const attentionNamed = attentionLookup(builtinAttentions);
