// --bind: `IP:port`, `[IPv6]:port`, `localhost:port` or `unix:/absolute/path`. Host names
// other than localhost are refused: the daemon must know exactly which interface it exposes.
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';

export type Bind = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseBind(text: string): Bind {
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    if (!isAbsolute(path))
      throw new Error(`--bind ${text}: a unix socket needs an absolute path (unix:/run/forkd/api.sock)`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new Error(`--bind ${JSON.stringify(text)} is not HOST:PORT, [IPv6]:PORT or unix:/path`);
  const host = m[1] ?? (m[2] === 'localhost' ? '127.0.0.1' : m[2]!);
  if (isIP(host) === 0) throw new Error(`--bind ${text}: use an IP address, not a host name (e.g. 127.0.0.1:8889)`);
  return { kind: 'tcp', host, port };
}

/** Loopback (127.0.0.0/8, ::1) or a unix socket: reachable only from this host. */
export function isLocalOnly(bind: Bind): boolean {
  if (bind.kind === 'unix') return true;
  if (isIP(bind.host) === 4) return bind.host.startsWith('127.');
  return bind.host === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(bind.host);
}

export function bindText(bind: Bind): string {
  if (bind.kind === 'unix') return `unix:${bind.path}`;
  return isIP(bind.host) === 6 ? `[${bind.host}]:${bind.port}` : `${bind.host}:${bind.port}`;
}
