// A small snapshot written straight into a data dir, with a consistent snapshot.json, for
// tests that move or list snapshots without booting a guest (it does not restore: its memory
// and device state are made up). The daemon lists it as `ready`; packs carry it like any other.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_PROTOCOL_VERSION, FORKD_VERSION } from '../../src/lib/version.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export async function writeFakeSnapshot(
  dataDir: string,
  tag: string,
  host: { qemuVersion: string; accel: 'kvm' | 'tcg' },
  memoryBytes = 256 * 1024,
): Promise<Map<string, Buffer>> {
  const memory = Buffer.alloc(memoryBytes);
  memory.write(`guest ram of ${tag}`, 4096);
  memory[memory.length - 1] = 7;
  const files = new Map<string, Buffer>([
    ['memory.bin', memory],
    ['vmstate', Buffer.from(`QEVM fake device state of ${tag}\n`)],
    ['vmlinux', Buffer.from('fake kernel\n')],
    ['initrd.img', Buffer.from('fake initrd\n')],
  ]);
  const meta = {
    formatVersion: 1,
    tag,
    createdAt: new Date().toISOString(),
    forkdVersion: FORKD_VERSION,
    agentProtocol: AGENT_PROTOCOL_VERSION,
    qemuVersion: host.qemuVersion,
    accel: host.accel,
    layout: { machine: 'microvm', memMiB: 128, vcpus: 1, rootDisk: false, mac: 'aa:fc:00:00:00:01' },
    kernelCmdline: 'console=ttyS0',
    image: { name: 'default', id: 'feedface', hasPython: false, pythonPreload: [] },
    files: Object.fromEntries([...files].map(([n, b]) => [n, { sha256: sha(b), size: b.length }])),
    warmup: [],
    parentTag: null,
    branchedFrom: null,
  };
  const dir = join(dataDir, 'snapshots', tag);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [n, b] of files) await writeFile(join(dir, n), b);
  await writeFile(join(dir, 'snapshot.json'), JSON.stringify(meta, null, 2));
  return files;
}
