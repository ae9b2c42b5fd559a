// Progress for long operations, on stderr. On a terminal the current step redraws one line;
// otherwise (CI, pipes) each step is one plain line, so logs stay readable.
import type { CliContext } from './command.js';

export interface Progress {
  step(text: string): void;
  done(text: string): void;
}

export function createProgress(ctx: CliContext, enabled = true): Progress {
  const started = Date.now();
  const stamp = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  if (!enabled) return { step: () => undefined, done: () => undefined };
  if (ctx.interactive) {
    return {
      step: (text) => ctx.err(`\r\x1b[2K… ${text} (${stamp()})`),
      done: (text) => ctx.err(`\r\x1b[2K✓ ${text} (${stamp()})\n`),
    };
  }
  return {
    step: (text) => ctx.err(`… ${text} (${stamp()})\n`),
    done: (text) => ctx.err(`✓ ${text} (${stamp()})\n`),
  };
}
