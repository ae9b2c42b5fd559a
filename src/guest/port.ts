// The virtio-serial port as seen from inside the guest. Kernel semantics (virtio_console):
// read() returns 0 while no host is connected and nothing is buffered, and write() blocks
// while the host is away. So EOF means "host went away", not "done": we keep the fd open
// (closing it discards buffered data) and poll with read() until a new host sends bytes.
// Node cannot put a char device in its event loop, so reads and writes run on the threadpool.
import { execFile } from 'node:child_process';
import { open, readdir, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AGENT_PORT_NAME } from '../protocol/index.js';
import type { GuestLog } from './log.js';

const SYS_PORTS = '/sys/class/virtio-ports';
const READ_BYTES = 64 * 1024;
/** Poll fast right after a disconnect (a restored child's host connects within ms), then slow. */
const FAST_POLL_MS = 20;
const SLOW_POLL_MS = 200;
const FAST_POLL_FOR_MS = 5000;

/** `/dev/vport0p1` for the port named org.forkd.agent, or undefined if it is not there (yet). */
export async function findAgentPort(
  sysDir = SYS_PORTS,
  devDir = '/dev',
): Promise<{ device: string; sysEntry: string } | undefined> {
  const entries = await readdir(sysDir).catch(() => [] as string[]);
  for (const entry of entries.sort()) {
    const name = await readFile(join(sysDir, entry, 'name'), 'utf8').catch(() => '');
    if (name.trim() === AGENT_PORT_NAME) return { device: join(devDir, entry), sysEntry: join(sysDir, entry) };
  }
  return undefined;
}

/** There is no udev: create the node from the port's major:minor if devtmpfs lacks it. */
export async function ensureDeviceNode(device: string, sysEntry: string, log: GuestLog): Promise<void> {
  if (
    await stat(device).then(
      () => true,
      () => false,
    )
  )
    return;
  const majorMinor = (await readFile(join(sysEntry, 'dev'), 'utf8')).trim();
  const [major, minor] = majorMinor.split(':');
  if (!major || !minor) throw new Error(`${sysEntry}/dev holds ${JSON.stringify(majorMinor)}, not major:minor`);
  log.info('creating device node', { device, majorMinor });
  await new Promise<void>((resolve, reject) =>
    execFile('/bin/mknod', [device, 'c', major, minor], (err, _out, stderr) =>
      err
        ? reject(new Error(`mknod ${device} c ${major} ${minor} failed: ${stderr.trim() || err.message}`))
        : resolve(),
    ),
  );
}

/** Waits (forever, logging now and then) for the port to appear, then makes sure /dev has it. */
export async function waitForAgentPort(log: GuestLog): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const port = await findAgentPort();
    if (port) {
      await ensureDeviceNode(port.device, port.sysEntry, log);
      return port.device;
    }
    if (attempt % 100 === 0)
      log.warn(`no virtio port named ${AGENT_PORT_NAME} in ${SYS_PORTS} yet; is virtio_console loaded?`);
    await sleep(100);
  }
}

export class CharDevPort {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private fh: FileHandle,
    private readonly path: string,
    private readonly log: GuestLog,
  ) {}

  static async open(path: string, log: GuestLog): Promise<CharDevPort> {
    return new CharDevPort(await open(path, 'r+'), path, log);
  }

  /** Waits until a host sends bytes; yields the connection's data until EOF (host gone). */
  async nextSession(): Promise<AsyncIterable<Buffer>> {
    const idleSince = performance.now();
    for (;;) {
      const first = await this.read();
      if (first) return this.session(first);
      await sleep(performance.now() - idleSince < FAST_POLL_FOR_MS ? FAST_POLL_MS : SLOW_POLL_MS);
    }
  }

  /** Serialized: frames from different sessions must not interleave. */
  write(bytes: Buffer): Promise<void> {
    const next = this.writing.then(async () => {
      for (let off = 0; off < bytes.length;) {
        const { bytesWritten } = await this.fh.write(bytes, off);
        off += bytesWritten;
      }
    });
    this.writing = next.catch(() => undefined);
    return next;
  }

  private async *session(first: Buffer): AsyncGenerator<Buffer> {
    yield first;
    for (;;) {
      const chunk = await this.read();
      if (!chunk) return;
      yield chunk;
    }
  }

  /** A chunk, or undefined on EOF. I/O errors reopen the device rather than kill the agent. */
  private async read(): Promise<Buffer | undefined> {
    for (;;) {
      const buf = Buffer.allocUnsafe(READ_BYTES);
      try {
        const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
        return bytesRead === 0 ? undefined : buf.subarray(0, bytesRead);
      } catch (err) {
        this.log.error('reading the agent port failed; reopening', { path: this.path, error: String(err) });
        await sleep(SLOW_POLL_MS);
        await this.fh.close().catch(() => undefined);
        this.fh = await open(this.path, 'r+').catch(() => this.fh);
      }
    }
  }
}
