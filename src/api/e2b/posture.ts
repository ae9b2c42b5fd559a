// --e2b-bind: the same rules as --bind (posture.ts). Off loopback it needs the token (it is the
// E2B API key) and TLS (or --insecure-no-tls); the listener uses the same certificate.
import { messageOf } from '../../lib/errors.js';
import { bindText, isLocalOnly, parseBind, type Bind } from '../bind.js';
import { StartupRefusal, type Posture } from '../posture.js';

export function checkE2bBind(text: string | undefined, posture: Posture, insecureNoTls: boolean): Bind | undefined {
  if (text === undefined) return undefined;
  let bind: Bind;
  try {
    bind = parseBind(text);
  } catch (err) {
    throw new StartupRefusal([`--e2b-bind: ${messageOf(err)}`]);
  }
  if (bind.kind === 'unix')
    throw new StartupRefusal(['--e2b-bind takes IP:PORT: the E2B SDK reaches its API over TCP']);
  const where = bindText(bind);
  const problems: string[] = [];
  if (!isLocalOnly(bind) && posture.token === undefined)
    problems.push(`refusing to serve the E2B API on ${where} without --token-file: the token is its API key`);
  if (!isLocalOnly(bind) && posture.tls === undefined && !insecureNoTls)
    problems.push(
      `refusing plain HTTP for the E2B API on non-loopback ${where}: pass --tls-cert and --tls-key, or --insecure-no-tls behind a TLS proxy`,
    );
  if (problems.length > 0) throw new StartupRefusal(problems);
  return bind;
}
