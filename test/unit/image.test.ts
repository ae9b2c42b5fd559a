import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpioHeader } from '../../src/image/cpio.js';
import { detectCompression, locatePayload } from '../../src/image/bzimage.js';
import { loadOrder, normalizeModuleName } from '../../src/image/modules.js';
import { parseLdd } from '../../src/image/guest-files.js';
import { assertPackageNames } from '../../src/image/debian-rootfs.js';
import { compareVersions } from '../../src/image/kernel.js';

test('cpio newc header layout', () => {
  const h = cpioHeader({ ino: 1, mode: 0o100644, nlink: 1, size: 5, name: 'init' });
  assert.equal(h.toString('ascii', 0, 6), '070701');
  assert.equal(h.length % 4, 0);
  assert.equal(h.toString('ascii', 6, 14), '00000001');
  assert.equal(h.toString('ascii', 54, 62), '00000005'); // filesize field
  assert.equal(h.toString('ascii', 94, 102), '00000005'); // namesize incl. NUL
});

test('bzImage payload is located from the setup header', () => {
  const bz = Buffer.alloc(8192);
  bz.write('HdrS', 0x202, 'latin1');
  bz[0x1f1] = 3; // setup_sects -> payload base (3+1)*512 = 2048
  bz.writeUInt32LE(100, 0x248);
  bz.writeUInt32LE(16, 0x24c);
  Buffer.from('02214c18aabbccdd', 'hex').copy(bz, 2048 + 100);
  const p = locatePayload(bz);
  assert.equal(p.compression, 'lz4');
  assert.equal(p.data.length, 16);
  assert.throws(() => locatePayload(Buffer.alloc(8192)), /HdrS/);
  assert.equal(detectCompression(Buffer.from('1f8b0800', 'hex')), 'gzip');
  assert.throws(() => detectCompression(Buffer.from('00000000', 'hex')), /unknown/);
});

test('module load order puts dependencies first and detects cycles', () => {
  const deps: Record<string, string[]> = {
    virtio_net: ['virtio', 'virtio_ring', 'net_failover'],
    net_failover: ['failover'],
    virtio: ['virtio_ring'],
    virtio_ring: [],
    failover: [],
    virtio_mmio: ['virtio', 'virtio_ring'],
  };
  const order = loadOrder(['virtio_mmio', 'virtio_net'], (n) => deps[n] ?? []);
  for (const [m, ds] of Object.entries(deps))
    for (const d of ds) assert.ok(order.indexOf(d) < order.indexOf(m), `${d} before ${m}`);
  assert.throws(() => loadOrder(['a'], (n) => (n === 'a' ? ['b'] : ['a'])), /cycle/);
  assert.equal(normalizeModuleName('virtio-rng'), 'virtio_rng');
});

test('ldd output parsing', () => {
  const out = `\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n`;
  assert.deepEqual(parseLdd(out), [
    '/lib/x86_64-linux-gnu/libc.so.6',
    '/lib/x86_64-linux-gnu/libdl.so.2',
    '/lib64/ld-linux-x86-64.so.2',
  ]);
});

test('package names are validated before reaching apt', () => {
  assertPackageNames(['python3-numpy', 'libstdc++6', 'g++']);
  for (const bad of ['--allow-unauthenticated', 'Numpy', 'a b', '../x', ''])
    assert.throws(() => assertPackageNames([bad]), /invalid Debian package/);
});

test('kernel package versions compare numerically', () => {
  assert.ok(compareVersions('6.1.192-2', '6.1.99-1') > 0);
  assert.equal(compareVersions('6.1.0', '6.1.0'), 0);
});
