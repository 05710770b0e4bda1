/** An error meant for the user: its message names what was wrong; the CLI prints it on one line. */
export class YuanError extends Error {
  /** A stable machine-readable code, e.g. `config`, `not-found`, `checkpoint`. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'YuanError';
    this.code = code;
  }
}

/** A config value failed validation; the message names the field, the value and what was expected. */
export class ConfigError extends YuanError {
  constructor(message: string) {
    super('config', message);
    this.name = 'ConfigError';
  }
}

/** A named thing (plugin, preset, file, tensor) does not exist; the message lists what does. */
export class NotFoundError extends YuanError {
  constructor(message: string) {
    super('not-found', message);
    this.name = 'NotFoundError';
  }
}
