// The built-in attention plugins (mha, lfa, lpa) in a frozen registry, as `yuan` builds it: the benchmarks pick
// theirs by name here (the tests use packages/model/test/attention.ts, which Node cannot load as TypeScript).
import { lfaAttention } from '@yuan/attention-lfa';
import { lpaAttention } from '@yuan/attention-lpa';
import { PluginRegistry } from '@yuan/core';
import { attentionLookup, mhaAttention } from '@yuan/model';

/** The attention plugin of that name (an unknown name lists the registered ones). */
export const attentionNamed = attentionLookup(
  new PluginRegistry()
    .register(mhaAttention, '@yuan/model')
    .register(lfaAttention, '@yuan/attention-lfa')
    .register(lpaAttention, '@yuan/attention-lpa')
    .freeze(),
);
