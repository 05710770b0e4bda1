import { ConfigError, type DocumentFilter, type FilterPlugin, type Schema } from '@yuan/core';

/** What a built-in filter declares: name, description, defaults, an options schema and its factory. */
export interface FilterSpec<O> {
  name: string;
  description: string;
  defaults: O;
  schema: Schema<O>;
  create(options: O): DocumentFilter;
}

/** Builds a filter plugin whose `validate` checks the options against its schema. */
export function defineFilter<O>(spec: FilterSpec<O>): FilterPlugin<O> {
  return {
    kind: 'filter',
    name: spec.name,
    description: spec.description,
    defaults: spec.defaults,
    validate: (options) => spec.schema.parse(options, `${spec.name}.options`),
    create: (options) => spec.create(options),
  };
}

/** Throws a ConfigError when `ok` is false (cross-field option checks). */
export function check(ok: boolean, message: string): void {
  if (!ok) throw new ConfigError(`invalid config: ${message}`);
}
