// The one tag rule. Every surface where a user-supplied name becomes a path (snapshot tags,
// image names, pack manifests, sandbox ids) goes through `assertTag` BEFORE any path is
// derived. Two past advisories of the original were path traversal through unchecked tags.
import { ForkdError } from './errors.js';

/** First character alphanumeric; then letters, digits, `_` and `-`; 1 to 64 characters. ASCII only. */
export const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function isValidTag(value: unknown): value is string {
  return typeof value === 'string' && TAG_PATTERN.test(value);
}

/** Throws `invalid_tag` naming what was wrong; returns the tag unchanged when it is valid. */
export function assertTag(value: unknown, what = 'tag'): string {
  if (isValidTag(value)) return value;
  throw new ForkdError(
    'invalid_tag',
    `invalid ${what} ${describe(value)}: ${why(value)}; use 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit`,
    {
      details: { what },
    },
  );
}

function describe(value: unknown): string {
  if (typeof value !== 'string') return `(${typeof value})`;
  // JSON.stringify escapes NUL and control characters so the message stays one printable line.
  const shown = value.length > 80 ? `${value.slice(0, 80)}...` : value;
  return JSON.stringify(shown);
}

function why(value: unknown): string {
  if (typeof value !== 'string') return 'not a string';
  if (value.length === 0) return 'empty';
  if (value.length > 64) return `${value.length} characters, at most 64 allowed`;
  if (/[^\x20-\x7e]/.test(value)) return 'contains non-ASCII or control characters';
  if (value.includes('/')) return 'contains a slash';
  if (value.includes('..')) return 'contains ".."';
  if (!/^[A-Za-z0-9]/.test(value)) return 'must start with a letter or digit';
  return 'contains a character outside A-Z a-z 0-9 _ -';
}
