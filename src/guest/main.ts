// Entry of the in-guest agent (bundled to dist/guest/forkd-agent.mjs, started and respawned
// by busybox init). Environment, all optional:
//   FORKD_GUESTCTL      path of forkd-guestctl (default /usr/lib/forkd/forkd-guestctl)
//   FORKD_PYTHON        Python interpreter for eval (default python3 from PATH)
//   FORKD_AGENT_DEVICE  use this char device instead of looking up org.forkd.agent in sysfs
//   FORKD_AGENT_LOG     debug | info | warn | error (default info)
import { createAgent, DEFAULT_GUESTCTL } from './agent.js';
import { installKernelRandom } from './kernel-random.js';
import { createGuestLog, type GuestLogLevel } from './log.js';
import { CharDevPort, waitForAgentPort } from './port.js';

const env = process.env;
const level = (['debug', 'info', 'warn', 'error'] as const).find((l) => l === env.FORKD_AGENT_LOG) ?? 'info';
const log = createGuestLog(level satisfies GuestLogLevel);

// The agent is the sandbox's only door: a bug in one request must not take it down.
process.on('uncaughtException', (err) => log.error('uncaught exception', { error: String(err), stack: err.stack }));
process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: String(err) }));

// Before anything else: no OpenSSL DRBG state that a snapshot could copy into siblings.
installKernelRandom();

const agent = createAgent({
  guestctlPath: env.FORKD_GUESTCTL ?? DEFAULT_GUESTCTL,
  python: env.FORKD_PYTHON ?? 'python3',
  log,
});
const device = env.FORKD_AGENT_DEVICE ?? (await waitForAgentPort(log));
const port = await CharDevPort.open(device, log);
log.info('listening', { device, pid: process.pid });
for (;;) {
  const input = await port.nextSession();
  log.info('host connected');
  await agent.serve(input, (bytes) => port.write(bytes));
  log.info('host disconnected');
}
