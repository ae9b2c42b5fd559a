// "The outside world" for egress tests, made only of addresses on this machine, in namespaces
// the test creates:
//   fk-tsrv1  198.51.100.10 (TEST-NET-2)  and  fk-tsrv2  203.0.113.10 (TEST-NET-3)
// each an HTTP server (answering its name) behind its own veth to the host. A safety-net table
// drops anything a sandbox sends through the host towards any other interface, so even a
// broken policy could not send a packet off this machine; its counter shows it never had to.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { BRIDGE } from '../../src/host/bridge.js';

const pexec = promisify(execFile);

export const SERVERS = [
  { ns: 'fk-tsrv1', host: '198.51.100.1', addr: '198.51.100.10', cidr: '198.51.100.0/24', name: 'srv1' },
  { ns: 'fk-tsrv2', host: '203.0.113.1', addr: '203.0.113.10', cidr: '203.0.113.0/24', name: 'srv2' },
] as const;
export const HTTP_PORT = 8080;
const SERVER_JS = `require('http').createServer((q,s)=>{console.log('req '+q.socket.remoteAddress);s.end(process.argv[1]+'\\n')}).listen(${HTTP_PORT},'0.0.0.0',()=>console.log('listening'))`;
const SAFETY_TABLE = 'forkd_test';
const SAFETY = `table inet ${SAFETY_TABLE} {
  counter escaped {}
  chain forward {
    type filter hook forward priority -50; policy accept;
    iifname "${BRIDGE}" oifname != { "${SERVERS[0].ns}", "${SERVERS[1].ns}" } counter name "escaped" drop
  }
}
`;

/** The URL of test server `i`. */
export const serverUrl = (i: 0 | 1): string => `http://${SERVERS[i].addr}:${HTTP_PORT}/`;

/**
 * Inside the guest: an HTTP GET with busybox `nc` (the lean image has no Node, and Debian's
 * static busybox wget segfaults in its resolver). Exit 0 with the body on stdout; non-zero when
 * the connection fails or times out, or nothing came back.
 */
const FETCH_SH = `resp=$(printf 'GET / HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' "$1" | nc -w "$3" "$1" "$2") || exit 1
[ -n "$resp" ] || exit 2
printf '%s\\n' "$resp" | tr -d '\\r' | sed '1,/^$/d'`;

/** argv that fetches `url` inside a guest (see FETCH_SH). */
export function fetchArgv(url: string, timeoutSecs: number): string[] {
  const u = new URL(url);
  return ['sh', '-c', FETCH_SH, 'fetch', u.hostname, u.port || '80', String(timeoutSecs)];
}

async function ip(...args: string[]): Promise<void> {
  await pexec('ip', args);
}

/** Packets counted by a named nftables counter, on the host or inside namespace `ns`. */
export async function nftCounter(ns: string | undefined, table: string, counter: string): Promise<number> {
  const argv = [...(ns ? ['nsenter', `--net=/run/netns/${ns}`] : []), 'nft', 'list', 'counter', 'inet', table, counter];
  const { stdout } = await pexec(argv[0]!, argv.slice(1));
  return Number(/packets (\d+)/.exec(stdout)?.[1] ?? NaN);
}

/** A node process inside namespace `ns`; resolves once it printed "listening". */
export async function startInNetns(
  ns: string,
  code: string,
  arg: string,
): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '-e', code, arg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 300 && !out.includes('listening'); i++) {
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  assert.match(out, /listening/, `server in ${ns} did not start: ${out}`);
  return { proc, out: () => out };
}

export interface TestNet {
  /** Packets the safety net dropped (anything a sandbox sent elsewhere than the test servers). */
  escaped(): Promise<number>;
  /** Kill the servers, remove their namespaces and links and the safety net; restore ip_forward. */
  stop(): Promise<void>;
}

/** Creates the two test servers and the safety-net table. */
export async function startTestNet(): Promise<TestNet> {
  const ipForwardBefore = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  const procs: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of procs) p.kill('SIGKILL');
    await sleep(200);
    for (const s of SERVERS) await ip('netns', 'delete', s.ns).catch(() => undefined);
    for (const s of SERVERS) await ip('link', 'del', s.ns).catch(() => undefined);
    await pexec('nft', ['delete', 'table', 'inet', SAFETY_TABLE]).catch(() => undefined);
    await writeFile('/proc/sys/net/ipv4/ip_forward', ipForwardBefore).catch(() => undefined);
  };
  try {
    const nft = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
    nft.stdin.end(SAFETY);
    assert.equal(await new Promise((r) => nft.once('exit', r)), 0, 'safety-net table applied');
    for (const s of SERVERS) {
      await ip('netns', 'add', s.ns);
      await ip('link', 'add', s.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', s.ns);
      await ip('addr', 'add', `${s.host}/24`, 'dev', s.ns);
      await ip('link', 'set', s.ns, 'up');
      await ip('-n', s.ns, 'link', 'set', 'lo', 'up');
      await ip('-n', s.ns, 'addr', 'add', `${s.addr}/24`, 'dev', 'eth0');
      await ip('-n', s.ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', s.ns, 'route', 'add', 'default', 'via', s.host);
      procs.push((await startInNetns(s.ns, SERVER_JS, s.name)).proc);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { escaped: () => nftCounter(undefined, SAFETY_TABLE, 'escaped'), stop };
}
