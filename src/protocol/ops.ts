// The operations: parameter and result shapes of each `op`, as validators whose types both
// sides share. The guest checks params (the host is trusted, but a bad frame must not crash
// the agent); the host checks results (the guest is not trusted at all).
import {
  arrayOf,
  bool,
  bytes,
  int,
  literal,
  nullable,
  num,
  object,
  oneOf,
  optional,
  record,
  str,
  type Infer,
} from './check.js';
import {
  MAX_EVAL_CODE_BYTES,
  MAX_EVAL_VALUE_BYTES,
  MAX_EXEC_STDIN_BYTES,
  MAX_EXEC_TIMEOUT_MS,
  MAX_FILE_BYTES,
  MAX_IDENTITY_ENTROPY_BYTES,
  MAX_INPUT_CHUNK_BYTES,
  MAX_PTY_DIMENSION,
  MAX_LIST_ENTRIES,
  MAX_PATH_BYTES,
  MIN_IDENTITY_ENTROPY_BYTES,
} from './limits.js';

const path = str({ min: 1, max: MAX_PATH_BYTES, pattern: /^\/[^\0]*$/ });
const sha256 = str({ pattern: /^[0-9a-f]{64}$/ });
const version = str({ min: 1, max: 64 });
const sandboxId = str({ min: 1, max: 128, pattern: /^[A-Za-z0-9_.-]+$/ });
/** What the kernel takes in /proc/sys/kernel/hostname (64 bytes), RFC 1123 labels. */
const hostname = str({
  min: 1,
  max: 64,
  pattern: /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/,
});
const signalName = str({ pattern: /^SIG[A-Z0-9]{1,12}$/ });
const timeoutMs = int({ min: 1, max: MAX_EXEC_TIMEOUT_MS });
const pid = int({ min: 1, max: 2 ** 31 - 1 });
const empty = object({});
const ptyDimension = int({ min: 1, max: MAX_PTY_DIMENSION });

const execDone = object({
  exitCode: nullable(int({ min: 0, max: 255 })),
  signal: nullable(signalName),
  timedOut: bool,
  /** The guest dropped output (ring buffer of a background process overflowed). */
  truncated: bool,
  durationMs: num({ min: 0 }),
});

const fileEntry = object({
  name: str({ max: MAX_PATH_BYTES }),
  type: literal('file', 'dir', 'symlink', 'other'),
  size: int({ min: 0 }),
  mode: int({ min: 0, max: 0o177777 }),
  mtimeMs: num(),
});

const evalError = object({
  name: str({ max: 256 }),
  message: str({ max: 64 * 1024 }),
  stack: optional(str({ max: 256 * 1024 })),
});

const moduleName = str({ min: 1, max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/ });

export const OPS = {
  hello: { params: empty, result: object({ protocolVersion: int({ min: 0 }), agentVersion: version }) },
  ping: {
    params: empty,
    result: object({ uptimeMs: num({ min: 0 }), agentVersion: version, sandboxId: nullable(sandboxId) }),
  },
  identity: {
    params: object({
      sandboxId,
      hostname,
      entropy: bytes({ minBytes: MIN_IDENTITY_ENTROPY_BYTES, maxBytes: MAX_IDENTITY_ENTROPY_BYTES }),
      wallClockMs: int({ min: 0 }),
    }),
    /** clockStepMs: how far the guest clock moved when set (guest before minus host). */
    result: object({ sandboxId, hostname, clockStepMs: num() }),
  },
  exec: {
    params: object({
      argv: optional(arrayOf(str({ max: 128 * 1024 }), 4096)),
      shell: optional(str({ max: 256 * 1024 })),
      env: optional(record(str({ max: 128 * 1024 }), 4096)),
      cwd: optional(path),
      stdin: optional(bytes({ maxBytes: MAX_EXEC_STDIN_BYTES })),
      /** 0: no timeout (a foreground exec's default is DEFAULT_EXEC_TIMEOUT_MS). */
      timeoutMs: optional(int({ min: 0, max: MAX_EXEC_TIMEOUT_MS })),
      background: optional(bool),
      /** Foreground only: run on a pseudo-terminal of this size (output as PTY frames). */
      pty: optional(object({ cols: ptyDimension, rows: ptyDimension })),
      /** Foreground only: stdin stays open for `input` until `input.close`. */
      stdinOpen: optional(bool),
      /** Foreground only: a STARTED frame with the pid before any output. */
      announce: optional(bool),
    }),
    result: oneOf(object({ pid }), execDone),
  },
  /** Bytes for the stdin (or terminal) of a running `stdinOpen` or `pty` exec. */
  input: { params: object({ pid, data: bytes({ maxBytes: MAX_INPUT_CHUNK_BYTES }) }), result: empty },
  /** End of input: stdin closed once written (a terminal gets its EOF character, ^D). */
  'input.close': { params: object({ pid }), result: empty },
  /** The terminal size of a running `pty` exec (the process gets SIGWINCH). */
  resize: { params: object({ pid, cols: ptyDimension, rows: ptyDimension }), result: empty },
  kill: { params: object({ pid, signal: optional(signalName) }), result: object({ signalled: bool }) },
  wait: { params: object({ pid, timeoutMs: optional(timeoutMs) }), result: execDone },
  /** Stops the request `target` of the same connection (exec, eval, files.read, files.write). */
  cancel: { params: object({ target: int({ min: 0 }) }), result: object({ cancelled: bool }) },
  eval: {
    params: object({
      code: str({ max: MAX_EVAL_CODE_BYTES }),
      language: optional(literal('js', 'python')),
      timeoutMs: optional(timeoutMs),
    }),
    /** The value as JSON text: the agent forwards it from the worker without parsing it. */
    result: object({
      valueJson: str({ max: MAX_EVAL_VALUE_BYTES }),
      stdout: str(),
      stderr: str(),
      truncated: bool,
      error: optional(evalError),
    }),
  },
  /** Starts the eval workers the image has (before a snapshot): which ones run now. */
  warm: {
    params: object({ js: optional(bool), pythonPreload: optional(arrayOf(moduleName, 64)) }),
    result: object({ js: bool, python: bool }),
  },
  /** Forwarded to the Python worker: imports the modules so the snapshot holds them. */
  'warm.python': {
    params: object({ pythonPreload: arrayOf(moduleName, 64) }),
    result: object({ version: str({ max: 256 }), modules: arrayOf(moduleName, 64) }),
  },
  'files.read': { params: object({ path }), result: object({ size: int({ min: 0, max: MAX_FILE_BYTES }), sha256 }) },
  'files.write': {
    params: object({ path, size: int({ min: 0, max: MAX_FILE_BYTES }), mode: optional(int({ min: 0, max: 0o7777 })) }),
    result: object({ size: int({ min: 0, max: MAX_FILE_BYTES }), sha256 }),
  },
  'files.list': {
    params: object({ path }),
    result: object({ entries: arrayOf(fileEntry, MAX_LIST_ENTRIES), truncated: bool }),
  },
  'files.stat': { params: object({ path }), result: fileEntry },
  'files.remove': { params: object({ path, recursive: optional(bool) }), result: empty },
  'files.mkdir': { params: object({ path, parents: optional(bool) }), result: empty },
  /** rename(2): `to` is replaced if it exists (a file, or an empty directory by a directory). */
  'files.rename': { params: object({ from: path, to: path }), result: empty },
} as const;

export type Op = keyof typeof OPS;
export type ParamsOf<K extends Op> = Infer<(typeof OPS)[K]['params']>;
export type ResultOf<K extends Op> = Infer<(typeof OPS)[K]['result']>;

export type ExecParams = ParamsOf<'exec'>;
export type ExecDone = Infer<typeof execDone>;
export type FileEntry = Infer<typeof fileEntry>;
export type EvalResult = ResultOf<'eval'>;
export type EvalError = Infer<typeof evalError>;

export function isOp(value: string): value is Op {
  return Object.hasOwn(OPS, value);
}

/** Ops whose work the host can stop with `cancel` when its deadline or signal fires. */
export const CANCELLABLE_OPS: ReadonlySet<Op> = new Set<Op>(['exec', 'eval', 'files.read', 'files.write']);
