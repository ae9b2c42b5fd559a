// src/vmm owns QEMU's process life: a QEMU we spawned (QemuProcess) and one we only found
// again, as after a daemon restart (AdoptedQemu), stop through the same memoized dispose(),
// and every caller, however many at once, returns only once the process is gone. Real QEMU
// (paused with -S: no guest needed to test a process's life), no mocks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QEMU_BINARY } from '../../src/host/qemu-version.js';
import { AdoptedQemu } from '../../src/vmm/adopted-qemu.js';
import { QemuHandle } from '../../src/vmm/qemu-handle.js';
import { QemuProcess } from '../../src/vmm/qemu-process.js';
import { QmpClient } from '../../src/vmm/qmp.js';
import { findLeaks } from '../helpers/leaks.js';

/** The process is gone: no /proc entry, or a zombie only its parent (not us) can reap. */
async function gone(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return true;
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state === 'Z' || state === 'X';
}

function pausedQemuArgs(dir: string): string[] {
  return [
    '-machine',
    'microvm',
    '-nodefaults',
    '-display',
    'none',
    '-S',
    '-qmp',
    `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
  ];
}

async function connectQmp(dir: string): Promise<QmpClient> {
  for (let i = 0; ; i++) {
    try {
      return await QmpClient.connect(join(dir, 'qmp.sock'), { timeoutMs: 2000 });
    } catch (err) {
      if (i >= 100) throw err;
      await sleep(50);
    }
  }
}

/** Start QEMU the way a daemon that then died leaves it: not our child (setsid, via a shell that exits). */
async function startForeignQemu(dir: string): Promise<number> {
  const argv = [QEMU_BINARY, ...pausedQemuArgs(dir)].map((a) => `'${a}'`).join(' ');
  const sh = spawn('setsid', ['sh', '-c', `${argv} >/dev/null 2>&1 & echo $!`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  sh.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  await new Promise((resolve) => sh.once('exit', resolve));
  const pid = Number(out.trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `pid of the foreign QEMU: ${out}`);
  return pid;
}

describe('QEMU process life (src/vmm)', () => {
  let dir = '';
  const started: number[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'forkd-qemu-life-'));
    await chmod(dir, 0o755);
  });

  after(async () => {
    // Anything a failed assertion left running: stop it through the code under test.
    for (const pid of started) await (await AdoptedQemu.adopt(pid, dir))?.dispose({ graceMs: 200 });
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(await findLeaks(), []);
  });

  test('a spawned and an adopted QEMU share one stop path', () => {
    // Neither overrides QemuHandle's dispose(): one sequence, one memo, for both.
    assert.equal(Object.hasOwn(QemuProcess.prototype, 'dispose'), false);
    assert.equal(Object.hasOwn(AdoptedQemu.prototype, 'dispose'), false);
    assert.ok(Object.create(QemuProcess.prototype) instanceof QemuHandle);
    assert.ok(Object.create(AdoptedQemu.prototype) instanceof QemuHandle);
  });

  test('spawned: dispose() from several callers at once all return after QEMU is gone', async () => {
    const proc = await QemuProcess.spawn({
      binary: QEMU_BINARY,
      args: pausedQemuArgs(dir),
      consoleLog: join(dir, 'console.log'),
    });
    started.push(proc.pid);
    const qmp = await connectQmp(dir);
    const quit = async (): Promise<void> => {
      await qmp.execute('quit');
    };
    const callers = [proc.dispose({ graceful: quit }), proc.dispose(), proc.dispose({ graceMs: 1 }), proc.dispose()];
    const goneOnReturn = await Promise.all(callers.map((p) => p.then(() => gone(proc.pid))));
    qmp.close();
    assert.deepEqual(goneOnReturn, [true, true, true, true]);
    assert.equal(proc.exited?.code, 0, 'it left through QMP quit (the first caller chose the sequence)');
    await proc.dispose(); // a later call returns at once
  });

  test('adopted (not our child): the same dispose() stops it, every caller returns after it is gone', async () => {
    const pid = await startForeignQemu(dir);
    started.push(pid);
    const qmp = await connectQmp(dir);
    assert.equal(
      await AdoptedQemu.adopt(pid, join(dir, 'elsewhere')),
      undefined,
      'a pid not running from dir is never adopted',
    );
    const qemu = await AdoptedQemu.adopt(pid, dir);
    assert.ok(qemu, 'adopted');
    assert.equal(await qemu.alive(), true);
    const quit = async (): Promise<void> => {
      await qmp.execute('quit');
    };
    const callers = [qemu.dispose({ graceful: quit }), qemu.dispose(), qemu.dispose(), qemu.dispose({ graceMs: 1 })];
    const goneOnReturn = await Promise.all(callers.map((p) => p.then(() => gone(pid))));
    qmp.close();
    assert.deepEqual(goneOnReturn, [true, true, true, true]);
    assert.equal(await qemu.alive(), false);
    assert.equal(await AdoptedQemu.adopt(pid, dir), undefined, 'a dead pid cannot be adopted');
  });

  test('adopted without a monitor: SIGTERM stops it, concurrent callers wait for it', async () => {
    const pid = await startForeignQemu(dir);
    started.push(pid);
    await connectQmp(dir).then((q) => q.close()); // it is up
    const a = await AdoptedQemu.adopt(pid, dir);
    const b = await AdoptedQemu.adopt(pid, dir);
    assert.ok(a && b);
    // Two handles on one pid (two reconcile paths): both return only after it is gone.
    const goneOnReturn = await Promise.all([a.dispose(), b.dispose(), a.dispose()].map((p) => p.then(() => gone(pid))));
    assert.deepEqual(goneOnReturn, [true, true, true]);
  });
});
