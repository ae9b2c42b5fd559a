// The MCP tools of `forkd mcp`: each a zod input schema and a handler over the SDK. Nothing
// is interpolated into a shell: exec_command takes an argv array, run without a shell (an
// agent that wants one passes ["sh", "-c", script] itself); paths and code go as JSON fields.
import { z } from 'zod';
import { ForkdApiError, Sandbox, type Controller } from 'forkd';
import { EVAL_TIMEOUT_SECS, EXEC_TIMEOUT_SECS, FORK_N_RANGE, LIMIT_RANGES, TTL_SECS_RANGE } from '../lib/contract.js';
import { TAG_PATTERN } from '../lib/tag.js';
import { SANDBOX_ID_PATTERN } from '../lib/ids.js';

// The same rules as the API's schema (lib/contract.ts, lib/tag.ts, lib/ids.ts), so a model
// hears about a bad argument from the tool's schema rather than from a 400.
const TAG = z.string().regex(TAG_PATTERN).describe('snapshot tag');
const ID = z.string().regex(SANDBOX_ID_PATTERN).describe('sandbox id (sb-...)');
const range = (n: z.ZodNumber, r: { readonly min: number; readonly max: number }): z.ZodNumber =>
  n.min(r.min).max(r.max);
const PATH = z.string().startsWith('/').describe('absolute path inside the sandbox');

export interface ToolResult {
  [k: string]: unknown;
  content: { type: 'text'; text: string }[];
  isError?: boolean;
}

export interface ToolDef {
  name: string;
  description: string;
  inputSchema: z.ZodRawShape;
  handler: (args: Record<string, unknown>) => Promise<unknown>;
}

/** JSON answer, or the API error as an MCP tool error (the model sees code and message). */
export async function runTool(def: ToolDef, args: Record<string, unknown>): Promise<ToolResult> {
  try {
    const value = await def.handler(args);
    return { content: [{ type: 'text', text: JSON.stringify(value ?? { ok: true }, null, 2) }] };
  } catch (err) {
    if (!(err instanceof ForkdApiError)) throw err;
    return { isError: true, content: [{ type: 'text', text: `${err.code}: ${err.message}` }] };
  }
}

export function forkdTools(c: Controller): ToolDef[] {
  const sb = (id: unknown): Sandbox => Sandbox.of(c, { id: id as string } as Parameters<typeof Sandbox.of>[1]);
  return [
    {
      name: 'list_snapshots',
      description: 'List the snapshots (tags) sandboxes can be spawned from, with status and lineage.',
      inputSchema: {},
      handler: async () => ({
        snapshots: (await c.snapshots.list()).map((s) => ({
          tag: s.tag,
          status: s.status,
          image: s.image,
          mem_mib: s.mem_mib,
          parent_tag: s.parent_tag,
          in_use_by: s.in_use_by,
        })),
      }),
    },
    {
      name: 'spawn_sandboxes',
      description: 'Start n copy-on-write sandboxes from a snapshot; returns their ids.',
      inputSchema: {
        snapshot: TAG,
        n: range(z.number().int(), FORK_N_RANGE).default(FORK_N_RANGE.default).describe('how many'),
        ttl_secs: range(z.number().int(), TTL_SECS_RANGE).optional().describe('stop them after this many seconds'),
        memory_limit_mib: range(z.number().int(), LIMIT_RANGES.memoryMiB)
          .optional()
          .describe("each sandbox's memory limit (cgroup); OOM ends it"),
        cpu_limit: range(z.number(), LIMIT_RANGES.cpuLimit)
          .optional()
          .describe("each sandbox's CPU quota in CPUs (0.5 = half of one)"),
        pids_limit: range(z.number().int(), LIMIT_RANGES.pidsLimit)
          .optional()
          .describe("each sandbox's limit on QEMU tasks"),
        per_child_netns: z.boolean().optional().describe('give each sandbox a network (its own namespace)'),
        egress: z
          .union([z.enum(['allow', 'deny']), z.object({ allow: z.array(z.string()) }).strict()])
          .optional()
          .describe('with per_child_netns: "allow", "deny" or {"allow": ["a.b.c.d/n", ...]}; default: the daemon\'s'),
      },
      handler: async (a) => {
        // The daemon validates every value (ranges, CIDRs) and answers 400 for a bad one.
        const optional = [
          'ttl_secs',
          'memory_limit_mib',
          'cpu_limit',
          'pids_limit',
          'per_child_netns',
          'egress',
        ] as const;
        const r = await c.sandboxes.spawn({
          snapshot_tag: a.snapshot as string,
          n: (a.n as number | undefined) ?? 1,
          ...Object.fromEntries(optional.filter((k) => a[k] !== undefined).map((k) => [k, a[k]])),
        });
        return {
          sandboxes: r.sandboxes.map((s) => ({
            id: s.id,
            state: s.state,
            reason: s.reason,
            memory_limit_mib: s.memory_limit_mib,
            cpu_limit: s.cpu_limit,
            pids_limit: s.pids_limit,
            egress: s.egress,
          })),
          warnings: r.warnings,
        };
      },
    },
    {
      name: 'list_sandboxes',
      description: 'List sandboxes (id, state, snapshot, created_at), optionally of one snapshot.',
      inputSchema: { snapshot: TAG.optional() },
      handler: async (a) => ({
        sandboxes: (await c.sandboxes.list(a.snapshot !== undefined ? { snapshotTag: a.snapshot as string } : {})).map(
          (s) => ({
            id: s.id,
            state: s.state,
            snapshot_tag: s.snapshot_tag,
            created_at: s.created_at,
            reason: s.reason,
          }),
        ),
      }),
    },
    {
      name: 'kill_sandbox',
      description: 'Stop and remove a sandbox.',
      inputSchema: { id: ID },
      handler: async (a) => {
        await c.sandboxes.kill(a.id as string);
        return { killed: a.id };
      },
    },
    {
      name: 'exec_command',
      description:
        'Run a program in a sandbox. `args` is argv, executed WITHOUT a shell (each element arrives verbatim); for shell syntax pass ["sh", "-c", "script"]. Returns exit_code, stdout, stderr.',
      inputSchema: {
        id: ID,
        args: z.array(z.string()).min(1).describe('argv: program and its arguments'),
        cwd: PATH.optional(),
        stdin: z.string().optional(),
        timeout_secs: range(z.number().int(), EXEC_TIMEOUT_SECS).default(EXEC_TIMEOUT_SECS.default),
      },
      handler: async (a) => {
        const r = await sb(a.id).commands.run(a.args as string[], {
          timeoutMs: ((a.timeout_secs as number | undefined) ?? EXEC_TIMEOUT_SECS.default) * 1000,
          ...(a.cwd !== undefined ? { cwd: a.cwd as string } : {}),
          ...(a.stdin !== undefined ? { stdin: a.stdin as string } : {}),
          // The tool answers the exit code; a non-zero one is a result for the model, not a tool error.
          throwOnNonZeroExit: false,
        });
        return {
          exit_code: r.exitCode,
          signal: r.signal,
          stdout: r.stdout,
          stderr: r.stderr,
          timed_out: r.timedOut,
          truncated: r.truncated,
        };
      },
    },
    {
      name: 'eval_code',
      description:
        "Evaluate code in a sandbox: 'js' runs in a persistent context, 'python' in the warm worker. Returns the value of the last expression.",
      inputSchema: {
        id: ID,
        code: z.string(),
        language: z.enum(['js', 'python']).default('js'),
        timeout_secs: range(z.number().int(), EVAL_TIMEOUT_SECS).default(EVAL_TIMEOUT_SECS.default),
      },
      handler: (a) =>
        sb(a.id).eval(a.code as string, {
          language: (a.language as 'js' | 'python' | undefined) ?? 'js',
          timeoutSecs: (a.timeout_secs as number | undefined) ?? EVAL_TIMEOUT_SECS.default,
        }),
    },
    {
      name: 'read_file',
      description: 'Read a file from a sandbox (UTF-8 text; set base64 for binary).',
      inputSchema: { id: ID, path: PATH, base64: z.boolean().default(false) },
      handler: async (a) => {
        const data = await sb(a.id).files.read(a.path as string, { format: 'bytes' });
        return a.base64 === true
          ? { path: a.path, base64: data.toString('base64') }
          : { path: a.path, text: data.toString('utf8') };
      },
    },
    {
      name: 'write_file',
      description: 'Write a file in a sandbox (atomic). Give `text`, or `base64` for binary.',
      inputSchema: { id: ID, path: PATH, text: z.string().optional(), base64: z.string().optional() },
      handler: async (a) => {
        if ((a.text === undefined) === (a.base64 === undefined))
          throw new ForkdApiError('invalid_argument', 0, 'give exactly one of text and base64');
        const data = a.text !== undefined ? Buffer.from(a.text as string) : Buffer.from(a.base64 as string, 'base64');
        const w = await sb(a.id).files.write(a.path as string, data);
        return { path: w.path, size: w.size, sha256: w.sha256 };
      },
    },
    {
      name: 'branch_sandbox',
      description:
        'Save a running sandbox as a new snapshot tag (BRANCH); spawn from that tag to explore alternatives.',
      inputSchema: { id: ID, tag: TAG.optional() },
      handler: (a) =>
        c.branch(a.id as string, { ...(a.tag !== undefined ? { tag: a.tag as string } : {}), wait: true }),
    },
  ];
}
