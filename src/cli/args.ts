// Small helpers for flag values (integers in a range, comma lists; errors are usage errors) and
// for what commands print (durations, sizes, ages, wrapped help text).
import { ForkdError } from '../lib/errors.js';

export function intFlag(
  name: string,
  raw: string | undefined,
  def: number,
  range: { min: number; max: number },
): number {
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw))
    throw new ForkdError('invalid_argument', `--${name} must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < range.min || n > range.max)
    throw new ForkdError('invalid_argument', `--${name} must be from ${range.min} to ${range.max}, got ${n}`);
  return n;
}

/** A decimal number (e.g. 0.5, 2) in a range; undefined when the flag is absent. */
export function numberFlag(
  name: string,
  raw: string | undefined,
  range: { min: number; max: number },
): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(raw))
    throw new ForkdError('invalid_argument', `--${name} must be a number like 0.5 or 2, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < range.min || n > range.max)
    throw new ForkdError('invalid_argument', `--${name} must be from ${range.min} to ${range.max}, got ${n}`);
  return n;
}

export function listFlag(raw: string | string[] | undefined): string[] {
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

export function formatMiB(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export function formatAge(from: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - from.getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** Greedy word wrap for help text: lines of at most `width` characters, each after `indent`. */
export function wrapText(text: string, width: number, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}
