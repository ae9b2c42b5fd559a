// Run a host command with an argv array (never a shell string), bounded output and a
// deadline; errors carry the command and its stderr tail (execa-style).
import { execFile } from 'node:child_process';
import { ForkdError } from './errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv; maxBuffer?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: opts.maxBuffer ?? 16 * 1024 * 1024,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.env ? { env: opts.env } : {}),
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const tail = (stderr || stdout || '').trim().split('\n').slice(-10).join('\n');
          reject(
            new ForkdError(
              'host_error',
              `${cmd} ${args.join(' ')} failed: ${err.message.split('\n')[0]}${tail ? `\n${tail}` : ''}`,
              { cause: err },
            ),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}
