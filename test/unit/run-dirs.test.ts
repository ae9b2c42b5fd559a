// Which run dirs the daemon may remove (reconcile.ts removeDeadRunDirs), on a real file system
// with real processes: a dir whose creator died before starting QEMU goes at once; a dir whose
// creator lives stays, however old; a dir naming no creator goes only once it is old.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CoreContext } from '../../src/core/context.js';
import { DataPaths, RUN_FILES } from '../../src/core/paths.js';
import { createRunDir, PENDING_RUN_DIR_PREFIX, runDirOwner } from '../../src/core/run-dir.js';
import { removeDeadRunDirs } from '../../src/core/controller/reconcile.js';
import { newSandboxId } from '../../src/lib/ids.js';
import { identityAlive, readProcStat, selfIdentity } from '../../src/host/proc-stat.js';

const pexec = promisify(execFile);

test('process identity: pid and start time; a reused pid does not match', async () => {
  const me = await selfIdentity();
  assert.match(me, new RegExp(`^${process.pid}:\\d+$`));
  assert.equal(await identityAlive(me), true);
  const start = (await readProcStat(process.pid))!.startTime;
  assert.equal(await identityAlive(`${process.pid}:${Number(start) + 1}`), false, 'same pid, other start time');
  assert.equal(await identityAlive('garbage'), false);
  assert.equal(await identityAlive('999999999:1'), false);
});

test('run dirs: abandoned ones go at once, live creators keep theirs, nameless ones after a grace', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'forkd-rundirs-'));
  try {
    const paths = new DataPaths(dataDir);
    const ctx = { paths } as CoreContext; // removeDeadRunDirs reads only the paths

    // Made by another process that then exited before any QEMU: its owner is gone.
    const abandoned = newSandboxId();
    const runDirModule = new URL('../../src/core/run-dir.js', import.meta.url).href;
    const pathsModule = new URL('../../src/core/paths.js', import.meta.url).href;
    await pexec(process.execPath, [
      '--input-type=module',
      '-e',
      `const { createRunDir } = await import(${JSON.stringify(runDirModule)});
       const { DataPaths } = await import(${JSON.stringify(pathsModule)});
       await createRunDir(new DataPaths(${JSON.stringify(dataDir)}), ${JSON.stringify(abandoned)}, undefined);`,
    ]);
    assert.equal(await runDirOwner(paths.runDir(abandoned)), 'gone');

    // Made by this (live) process, backdated: kept whatever its age.
    const mine = newSandboxId();
    await createRunDir(paths, mine, undefined);
    await utimes(paths.runDir(mine), new Date(0), new Date(0));
    assert.equal(await runDirOwner(paths.runDir(mine)), 'alive');
    assert.ok(!(await readdir(paths.runRoot)).some((n) => n.startsWith(PENDING_RUN_DIR_PREFIX)), 'renamed into place');

    // No owner file (an older forkd, or the instant between mkdir and the write): age decides.
    const namelessNew = newSandboxId();
    const namelessOld = newSandboxId();
    for (const id of [namelessNew, namelessOld]) await mkdir(paths.runDir(id), { recursive: true });
    await utimes(paths.runDir(namelessOld), new Date(0), new Date(0));

    // A record naming a dead QEMU goes; one naming a live process stays.
    const deadRecord = newSandboxId();
    const liveRecord = newSandboxId();
    await mkdir(paths.runDir(deadRecord));
    await writeFile(join(paths.runDir(deadRecord), RUN_FILES.record), JSON.stringify({ pid: 999_999_999 }));
    await mkdir(paths.runDir(liveRecord));
    await writeFile(join(paths.runDir(liveRecord), RUN_FILES.record), JSON.stringify({ pid: process.pid }));

    // Half-assembled dirs (a creator killed between its mkdir and the rename into place).
    const pendingDead = `${PENDING_RUN_DIR_PREFIX}${newSandboxId()}`;
    const pendingMine = `${PENDING_RUN_DIR_PREFIX}${newSandboxId()}`;
    const pendingNamelessOld = `${PENDING_RUN_DIR_PREFIX}${newSandboxId()}`;
    await mkdir(join(paths.runRoot, pendingDead));
    await writeFile(join(paths.runRoot, pendingDead, RUN_FILES.owner), '999999999:1\n');
    await mkdir(join(paths.runRoot, pendingMine));
    await writeFile(join(paths.runRoot, pendingMine, RUN_FILES.owner), `${await selfIdentity()}\n`);
    await mkdir(join(paths.runRoot, pendingNamelessOld));
    await utimes(join(paths.runRoot, pendingNamelessOld), new Date(0), new Date(0));
    // Named after their creator (no owner file yet: killed right after the mkdir), young.
    const pendingNamedDead = `${PENDING_RUN_DIR_PREFIX}${newSandboxId()}.999999999_1`;
    const pendingNamedMine = `${PENDING_RUN_DIR_PREFIX}${newSandboxId()}.${(await selfIdentity()).replace(':', '_')}`;
    await mkdir(join(paths.runRoot, pendingNamedDead));
    await mkdir(join(paths.runRoot, pendingNamedMine));

    const removed = await removeDeadRunDirs(ctx);
    assert.deepEqual(
      removed.sort(),
      [abandoned, namelessOld, deadRecord, pendingDead, pendingNamelessOld, pendingNamedDead].sort(),
    );
    assert.deepEqual(
      (await readdir(paths.runRoot)).sort(),
      [mine, namelessNew, liveRecord, pendingMine, pendingNamedMine].sort(),
    );
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
