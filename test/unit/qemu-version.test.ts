import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseQemuVersion } from '../../src/host/qemu-version.js';

void describe('parseQemuVersion', () => {
  void it('parses the Debian 12 banner', () => {
    const out =
      'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n' +
      'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n';
    assert.deepEqual(parseQemuVersion(out), {
      major: 7,
      minor: 2,
      patch: 22,
      raw: 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)',
    });
  });

  void it('parses an upstream build without a package suffix', () => {
    const v = parseQemuVersion('QEMU emulator version 9.1.0\nCopyright (c) 2003-2024 Fabrice Bellard\n');
    assert.deepEqual(v && [v.major, v.minor, v.patch, v.raw], [9, 1, 0, 'QEMU emulator version 9.1.0']);
  });

  void it('treats a missing patch level as 0', () => {
    assert.equal(parseQemuVersion('QEMU emulator version 8.0 (x)')?.patch, 0);
  });

  void it('returns undefined for output that is not a QEMU banner', () => {
    assert.equal(parseQemuVersion(''), undefined);
    assert.equal(parseQemuVersion('qemu-img version 7.2.22'), undefined);
    assert.equal(parseQemuVersion('QEMU emulator version unknown'), undefined);
  });
});
