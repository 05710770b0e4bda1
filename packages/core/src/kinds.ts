import type { ModelAdapterPlugin } from './adapter.js';
import type { AttentionPlugin } from './attention.js';
import type { TokenizerPlugin } from './tokenizer.js';

declare module './registry.js' {
  interface PluginKinds {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    attention: AttentionPlugin<any, any, any>;
    tokenizer: TokenizerPlugin;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    'model-adapter': ModelAdapterPlugin<any>;
  }
}
