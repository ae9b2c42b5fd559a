// The JavaScript eval worker (bundled to dist/src/guest/js-worker.mjs, installed as
// /usr/lib/forkd/js-worker.mjs). The native agent starts it as
//   node /usr/lib/forkd/js-worker.mjs
// with fd 0 = /dev/null, fds 1 and 2 = the agent's log, fd 3 = frames from the agent, fd 4 =
// frames to the agent (docs/PROTOCOL.md, "Eval workers"). It serves:
//   eval    {code, language?: 'js', timeoutMs?}  -> OK {valueJson, stdout, stderr, truncated, error?}
//                                                  or ERROR timeout / cancelled
//   warm.js {}                                   -> OK {version}: the context exists (it is made at start)
//   reseed  (id 0, no reply)                     -> drops buffered randomness, before the next frame
// SIGINT cancels an eval that is awaiting (ERROR cancelled; a synchronous loop runs on to its
// timeout); it never kills the worker.
// `--random-device PATH` (tests only) reads randomness from PATH instead of /dev/urandom.
import { JsEvaluator, UrandomPool } from '../eval-js.js';
import { GuestError } from '../errors.js';
import { installKernelRandom } from '../kernel-random.js';
import { DEFAULT_EVAL_TIMEOUT_MS, MAX_EVAL_CODE_BYTES, MAX_EXEC_TIMEOUT_MS } from '../../protocol/limits.js';
import type { WireRecord } from '../../protocol/wire.js';
import { WorkerChannel } from './channel.js';

const NAME = 'js worker';
const deviceAt = process.argv.indexOf('--random-device');
const device = deviceAt === -1 ? '/dev/urandom' : (process.argv[deviceAt + 1] ?? '/dev/urandom');

// Before anything else: Node's crypto must not draw on OpenSSL DRBG state a snapshot copies.
installKernelRandom(device);

// One pool backs Math.random in the eval context and in this realm (modules `require`d by
// user code run here), so reseed covers both.
const random = new UrandomPool(device);
Math.random = () => random.next();
const js = new JsEvaluator(random);

// User code's stray timers and promises must not take the warm context down.
process.on('uncaughtException', (err) => log(`uncaught exception: ${err.stack ?? String(err)}`));
process.on('unhandledRejection', (err) => log(`unhandled rejection: ${String(err)}`));
process.on('SIGINT', () => js.cancel());

js.warm();

WorkerChannel.open(
  NAME,
  {
    queued: {
      eval: (p) => {
        const { code, timeoutMs } = evalParams(p);
        return js.evaluate(code, timeoutMs);
      },
      'warm.js': () => ({ version: process.versions.node }),
    },
    immediate: { reseed: () => js.reseed() },
  },
  () => process.exit(0),
);

function evalParams(p: WireRecord): { code: string; timeoutMs: number } {
  const { code, language, timeoutMs } = p;
  if (typeof code !== 'string') throw new GuestError('bad_request', `${NAME}: eval.code must be a string`);
  if (Buffer.byteLength(code) > MAX_EVAL_CODE_BYTES) {
    throw new GuestError('too_large', `${NAME}: eval.code is over ${MAX_EVAL_CODE_BYTES} bytes`);
  }
  if (language !== undefined && language !== null && language !== 'js') {
    throw new GuestError('bad_request', `${NAME}: eval.language ${JSON.stringify(language)}: this worker runs js`);
  }
  if (timeoutMs === undefined || timeoutMs === null) return { code, timeoutMs: DEFAULT_EVAL_TIMEOUT_MS };
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < 1 ||
    timeoutMs > MAX_EXEC_TIMEOUT_MS
  ) {
    throw new GuestError('bad_request', `${NAME}: eval.timeoutMs must be an integer in 1..${MAX_EXEC_TIMEOUT_MS}`);
  }
  return { code, timeoutMs };
}

function log(line: string): void {
  process.stderr.write(`${NAME}: ${line}\n`);
}
