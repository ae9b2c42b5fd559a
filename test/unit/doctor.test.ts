import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  CHECKS,
  diskOutcome,
  doctorReport,
  exitCodeOf,
  renderHuman,
  runChecks,
  summarize,
  type Check,
  type CheckResult,
  type DoctorEnv,
} from '../../src/cli/commands/doctor.js';
import { parseDpkgStatus } from '../../src/host/apt.js';
import { missingControllers, parseCgroupMounts } from '../../src/host/cgroups-detect.js';
import { GIB } from '../../src/host/disk.js';
import { parsePasswd } from '../../src/host/users.js';

const TCG = { accel: 'tcg' as const, reason: 'no vmx/svm', warning: 'no vmx/svm; using TCG' };
const ENV: DoctorEnv = { dataDir: '/nonexistent/forkd', vmUser: 'forkd-vm', accel: TCG };

const RESULTS: CheckResult[] = [
  { name: 'qemu', status: 'pass', detail: 'QEMU emulator version 7.2.22' },
  { name: 'accel', status: 'warn', detail: 'tcg: no vmx/svm', hint: 'use a KVM host' },
  { name: 'kernel', status: 'fail', detail: 'no guest kernel', hint: 'run: sudo forkd setup' },
];

void describe('doctor rendering and exit code', () => {
  void it('renders one line per check with its mark, detail and hint, then the summary', () => {
    const text = renderHuman(RESULTS);
    assert.equal(
      text,
      [
        '✓ qemu    QEMU emulator version 7.2.22',
        '⚠ accel   tcg: no vmx/svm  → use a KVM host',
        '✗ kernel  no guest kernel  → run: sudo forkd setup',
        'pass=1 warn=1 fail=1',
        '',
      ].join('\n'),
    );
  });

  void it('exits 1 when any check fails, 0 when there are only passes and warnings', () => {
    assert.equal(exitCodeOf(RESULTS), 1);
    assert.equal(exitCodeOf(RESULTS.filter((r) => r.status !== 'fail')), 0);
    assert.equal(exitCodeOf([]), 0);
  });

  void it('counts each status and reports the accelerator in the JSON report', () => {
    assert.deepEqual(summarize(RESULTS), { pass: 1, warn: 1, fail: 1 });
    const report = doctorReport(RESULTS, TCG);
    assert.deepEqual(Object.keys(report), ['checks', 'summary', 'accel']);
    assert.equal(report.accel.accel, 'tcg');
  });

  void it('turns a check that throws into a failure carrying the message, in order', async () => {
    const checks: Check[] = [
      { name: 'ok', run: () => Promise.resolve({ status: 'pass', detail: 'fine' }) },
      { name: 'boom', run: () => Promise.reject(new Error('qemu-system-x86_64 not found')) },
    ];
    const results = await runChecks(checks, ENV);
    assert.deepEqual(
      results.map((r) => [r.name, r.status, r.detail]),
      [
        ['ok', 'pass', 'fine'],
        ['boom', 'fail', 'qemu-system-x86_64 not found'],
      ],
    );
  });

  void it('classifies free disk: pass >= 5 GiB, warn >= 1 GiB, else fail', () => {
    assert.equal(diskOutcome(5 * GIB, '/').status, 'pass');
    assert.equal(diskOutcome(5 * GIB - 1, '/').status, 'warn');
    assert.equal(diskOutcome(1 * GIB, '/').status, 'warn');
    assert.equal(diskOutcome(1 * GIB - 1, '/').status, 'fail');
    assert.ok(diskOutcome(0, '/').hint);
  });

  void it('has the checks the issue asks for, each name once', () => {
    const names = CHECKS.map((c) => c.name);
    assert.equal(new Set(names).size, names.length);
    for (const n of ['platform', 'qemu', 'accel', 'cgroups', 'netns', 'data-dir-access', 'kernel', 'image', 'disk']) {
      assert.ok(names.includes(n), n);
    }
  });

  void it('points the accel check at TCG as a warning, not a failure', async () => {
    const accel = CHECKS.find((c) => c.name === 'accel');
    assert.ok(accel);
    assert.equal((await accel.run(ENV)).status, 'warn');
  });
});

// The /proc/mounts of this project's machine: v1 controllers per mount under a tmpfs, plus an
// empty cgroup2 at /sys/fs/cgroup/unified (hybrid).
const HYBRID_MOUNTS = `proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime,size=12334460k,nr_inodes=3083615,mode=755 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;

const V2_MOUNTS = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
`;

void describe('parseCgroupMounts', () => {
  void it('reads this machine (hybrid: v1 controllers, cgroup2 at unified with only hugetlb)', () => {
    const info = parseCgroupMounts(HYBRID_MOUNTS, 'hugetlb\n');
    assert.equal(info.mode, 'hybrid');
    assert.deepEqual(info.controllers, { memory: 'v1', cpu: 'v1', pids: 'v1' });
    assert.equal(info.v2Root, '/sys/fs/cgroup/unified');
    assert.equal(info.v1Mounts.memory, '/sys/fs/cgroup/memory');
    assert.equal(info.v1Mounts['name=systemd'], '/sys/fs/cgroup/systemd');
    assert.equal(info.v1Mounts.relatime, undefined);
    assert.deepEqual(missingControllers(info), []);
  });

  void it('reads a pure v2 host', () => {
    const info = parseCgroupMounts(V2_MOUNTS, 'cpuset cpu io memory hugetlb pids rdma misc\n');
    assert.equal(info.mode, 'v2');
    assert.equal(info.v2Root, '/sys/fs/cgroup');
    assert.deepEqual(info.controllers, { memory: 'v2', cpu: 'v2', pids: 'v2' });
    assert.deepEqual(info.v1Mounts, {});
  });

  void it('reports v2 controllers that are not enabled as missing', () => {
    const info = parseCgroupMounts(V2_MOUNTS, 'cpuset io memory\n');
    assert.deepEqual(missingControllers(info), ['cpu', 'pids']);
  });

  void it('reads co-mounted v1 controllers and escaped mount paths', () => {
    const info = parseCgroupMounts('cgroup /sys/fs/cgroup/cpu\\040acct cgroup rw,nosuid,cpu,cpuacct 0 0\n');
    assert.equal(info.mode, 'v1');
    assert.equal(info.v1Mounts.cpu, '/sys/fs/cgroup/cpu acct');
    assert.equal(info.v1Mounts.cpuacct, '/sys/fs/cgroup/cpu acct');
    assert.deepEqual(missingControllers(info), ['memory', 'pids']);
  });

  void it('reports none when nothing is mounted', () => {
    const info = parseCgroupMounts('proc /proc proc rw 0 0\n');
    assert.equal(info.mode, 'none');
    assert.deepEqual(missingControllers(info), ['memory', 'cpu', 'pids']);
  });
});

void describe('host parsers used by doctor and setup', () => {
  void it('parseDpkgStatus keeps only installed packages', () => {
    const out = 'gcc\tinstall ok installed\nlz4\tdeinstall ok config-files\nzstd\tunknown ok not-installed\n';
    assert.deepEqual([...parseDpkgStatus(out)], ['gcc']);
  });

  void it('parsePasswd finds a user by exact name', () => {
    const passwd =
      'root:x:0:0:root:/root:/bin/bash\nforkd-vm2:x:998:998::/:/usr/sbin/nologin\nforkd-vm:x:999:997::/:/usr/sbin/nologin\n';
    assert.deepEqual(parsePasswd(passwd, 'forkd-vm'), { name: 'forkd-vm', uid: 999, gid: 997 });
    assert.equal(parsePasswd(passwd, 'forkd'), undefined);
  });
});
