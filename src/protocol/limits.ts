// Every bound of the guest-agent protocol, in one place. Both sides enforce them: the guest so
// a buggy host cannot exhaust the VM, the host because the guest is untrusted. Changing one
// that the other side relies on (frame size, chunk sizes) needs an AGENT_PROTOCOL_VERSION bump.

/** Name of the virtio-serial port (QEMU `virtserialport,name=`). */
export const AGENT_PORT_NAME = 'org.forkd.agent';

/** Largest frame (one JSON line, newline excluded) either side sends or accepts. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Raw bytes per file data frame (~342 KiB once base64-encoded, well under a frame). */
export const FILE_CHUNK_BYTES = 256 * 1024;
/** Raw bytes per exec output frame; larger pipe reads are split. */
export const STREAM_CHUNK_BYTES = 64 * 1024;

/** Requests in flight per connection; one more gets a `busy` error reply. */
export const MAX_CONCURRENT_REQUESTS = 64;

/**
 * Output the host collects per stream (stdout, stderr) of one exec. Beyond it the result is
 * flagged `truncated` but streaming continues, so `onStdout` callbacks still see everything.
 */
export const MAX_EXEC_OUTPUT_BYTES = 16 * 1024 * 1024;
/** Output kept per stream of a background process: the newest bytes win (ring buffer). */
export const BACKGROUND_OUTPUT_BYTES = 1024 * 1024;
/** Background processes the guest tracks (running or exited and not yet waited for). */
export const MAX_BACKGROUND_PROCESSES = 128;
/** stdin travels inside the request frame; bigger inputs belong in a file. */
export const MAX_EXEC_STDIN_BYTES = 512 * 1024;
export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const MAX_EXEC_TIMEOUT_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_WAIT_TIMEOUT_MS = 30_000;

export const MAX_EVAL_CODE_BYTES = 512 * 1024;
/** Captured stdout / stderr per eval call, per stream (then `truncated`). */
export const MAX_EVAL_CAPTURE_BYTES = 256 * 1024;
/** JSON size of an eval's value; a larger value is an error, not a silent cut. */
export const MAX_EVAL_VALUE_BYTES = 256 * 1024;
export const DEFAULT_EVAL_TIMEOUT_MS = 30_000;

/** Largest file `files.read` / `files.write` move. */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
export const MAX_PATH_BYTES = 4096;
/** `files.list` stops at this many entries (or a frame's worth) and flags `truncated`. */
export const MAX_LIST_ENTRIES = 4096;

export const MIN_IDENTITY_ENTROPY_BYTES = 64;
export const MAX_IDENTITY_ENTROPY_BYTES = 4096;

/** Bytes of one `input` op (stdin or terminal input of an interactive process). */
export const MAX_INPUT_CHUNK_BYTES = 64 * 1024;
/**
 * Input the guest buffers per process until the process reads it; an `input` that does not fit
 * is answered `busy` (the host retries), so a host writing faster than a process reads cannot
 * grow the guest's memory.
 */
export const PROCESS_INPUT_BUFFER_BYTES = 256 * 1024;
/** Largest `cols` / `rows` of a pseudo-terminal. */
export const MAX_PTY_DIMENSION = 1000;

/** Longest error message either side keeps from the other. */
export const MAX_ERROR_MESSAGE_CHARS = 4096;
