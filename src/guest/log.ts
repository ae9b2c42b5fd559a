// The agent's own log: JSON lines on stderr, which the guest init points at the serial
// console (console.log on the host). Kept tiny: the guest may import only Node built-ins.
export type GuestLogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<GuestLogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface GuestLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createGuestLog(
  level: GuestLogLevel = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
): GuestLog {
  const emit = (lvl: GuestLogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < ORDER[level]) return;
    write(`${JSON.stringify({ ts: new Date().toISOString(), level: lvl, msg: `forkd-agent: ${msg}`, ...fields })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export const silentGuestLog: GuestLog = createGuestLog('error', () => undefined);
