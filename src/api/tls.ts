// TLS settings: 1.2 and 1.3 only, forward-secret AEAD suites only. For TLS 1.2 that is ECDHE
// key exchange with AES-GCM or ChaCha20-Poly1305: no CBC, no static RSA key exchange, no
// finite-field DHE. TLS 1.3 suites are all AEAD with (EC)DHE; listed explicitly anyway.
import type { SecureContextOptions, TlsOptions } from 'node:tls';

export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');

export function tlsOptions(material: { cert: Buffer; key: Buffer }): TlsOptions & SecureContextOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
  };
}
