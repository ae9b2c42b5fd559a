// Finding the agent's virtio port in a sysfs-shaped directory, and the EOF = "host gone"
// session rule of the char-device transport (a regular file reads as one session then EOF).
import { strict as assert } from 'node:assert';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentGuestLog } from '../../src/guest/log.js';
import { CharDevPort, findAgentPort } from '../../src/guest/port.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'forkd-port-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('agent port', () => {
  void it('finds the port named org.forkd.agent', async () => {
    const sys = join(dir, 'sys');
    for (const [entry, name] of [
      ['vport0p1', 'org.qemu.guest_agent.0'],
      ['vport1p1', 'org.forkd.agent'],
    ] as const) {
      await mkdir(join(sys, entry), { recursive: true });
      await writeFile(join(sys, entry, 'name'), `${name}\n`);
    }
    assert.deepEqual(await findAgentPort(sys, '/dev'), { device: '/dev/vport1p1', sysEntry: join(sys, 'vport1p1') });
    assert.equal(await findAgentPort(join(dir, 'missing'), '/dev'), undefined);
  });

  void it('yields a session until EOF', async () => {
    const file = join(dir, 'port');
    await writeFile(file, 'abc\n');
    const port = await CharDevPort.open(file, silentGuestLog);
    const chunks: string[] = [];
    for await (const chunk of await port.nextSession()) chunks.push(chunk.toString());
    assert.deepEqual(chunks, ['abc\n']);
  });
});
