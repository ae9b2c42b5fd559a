// Test harness (not a test file): the real guest agent core served on a Unix socket, as QEMU
// would expose it, so the host AgentClient can be tested against it without a VM.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, type AgentOptions, type GuestAgent } from '../../src/guest/agent.js';

export interface GuestHarness {
  dir: string;
  socketPath: string;
  agent: GuestAgent;
  close(): Promise<void>;
}

export async function startGuest(opts: AgentOptions = {}): Promise<GuestHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'forkd-agent-test-'));
  const socketPath = join(dir, 'agent.sock');
  const agent = createAgent(opts);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    void agent.serveStream(socket);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    dir,
    socketPath,
    agent,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      agent.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Fails if any pid is still a live (non-zombie) process after `withinMs`. */
export async function assertGone(pids: number[], withinMs = 3000): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const deadline = Date.now() + withinMs;
  for (;;) {
    const alive: number[] = [];
    for (const pid of pids) {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      // Field 3 is the state; Z = zombie (dead, waiting for a parent that may be slow to reap).
      if (stat !== undefined && !/^\d+ \(.*\) Z/.test(stat)) alive.push(pid);
    }
    if (alive.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still alive: ${alive.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
