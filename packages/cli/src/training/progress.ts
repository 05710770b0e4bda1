import type { CommandIO } from '../command.js';

/** Progress of a loop: a bar redrawn in place on a terminal, else one plain line every `every` updates and at the end. */
export class Progress {
  private last = '';

  constructor(
    private readonly io: CommandIO,
    private readonly total: number,
    private readonly every: number,
  ) {}

  /** Reports that `done` of `total` units are finished, with a status text. */
  update(done: number, text: string): void {
    if (this.io.isTTY) {
      const width = 30;
      const filled = Math.round((done / this.total) * width);
      this.last = `\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.total} ${text}`;
      process.stderr.write(`${this.last}\x1b[K`);
      if (done === this.total) process.stderr.write('\n');
    } else if (done % this.every === 0 || done === this.total) {
      this.io.err(`${done}/${this.total} ${text}`);
    }
  }

  /** Prints a line without breaking the bar. */
  note(text: string): void {
    if (this.io.isTTY && this.last) process.stderr.write('\r\x1b[K');
    this.io.err(text);
    if (this.io.isTTY && this.last) process.stderr.write(this.last);
  }
}
