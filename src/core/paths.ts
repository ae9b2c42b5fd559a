// Every path under the data dir is derived here, and only from validated tags and ids: the
// one tag rule runs before any join (two advisories of the original were traversal via tags).
import { join } from 'node:path';
import { assertTag } from '../lib/tag.js';
import { assertSandboxId } from '../lib/ids.js';

export class DataPaths {
  constructor(readonly dataDir: string) {}

  get snapshotsDir(): string {
    return join(this.dataDir, 'snapshots');
  }

  get runRoot(): string {
    return join(this.dataDir, 'run');
  }

  snapshotDir(tag: string): string {
    return join(this.snapshotsDir, assertTag(tag, 'snapshot tag'));
  }

  /** A staging dir beside the snapshots; renamed into place only when complete. */
  snapshotStagingDir(tag: string, nonce: string): string {
    return join(this.snapshotsDir, `.staging-${assertTag(tag, 'snapshot tag')}-${nonce}`);
  }

  runDir(sandboxId: string): string {
    return join(this.runRoot, assertSandboxId(sandboxId));
  }
}

export const SNAPSHOT_FILES = {
  memory: 'memory.bin',
  vmstate: 'vmstate',
  meta: 'snapshot.json',
  kernel: 'vmlinux',
  initrd: 'initrd.img',
  rootDisk: 'rootfs.ext4',
} as const;

export const RUN_FILES = {
  qmp: 'qmp.sock',
  agent: 'agent.sock',
  console: 'console.log',
  record: 'sandbox.json',
  /** pid:starttime of the process that created the dir (see run-dir.ts). */
  owner: 'owner',
  migrate: 'migrate.sock',
} as const;
