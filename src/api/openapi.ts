// The API contract: an OpenAPI 3.1 document, committed as this TS object and served as
// /v1/openapi.json. It is not documentation beside the code: the router is built from its
// `paths`, every request is validated against its schemas before a handler runs, and the
// integration tests validate every response against it. Change the API here first.
import { TAG_PATTERN } from '../lib/tag.js';
import { SANDBOX_ID_PATTERN } from '../lib/ids.js';
import { ERROR_CODES } from '../lib/errors.js';
import { FORKD_VERSION } from '../lib/version.js';
import {
  FEATURES,
  MAX_EVAL_CODE_BYTES,
  MAX_EXEC_STDIN_BYTES,
  MAX_LIST_ENTRIES,
  MAX_PATH_BYTES,
  MAX_PTY_DIMENSION,
  PROCESS_SIGNALS,
} from '../core/api-surface.js';
import {
  BOOT_WAIT_SECS,
  DOWNTIME_MS_RANGE,
  EVAL_TIMEOUT_SECS,
  EXEC_TIMEOUT_SECS,
  FORK_N_RANGE,
  LIMIT_RANGES,
  MAX_ALLOW_CIDRS,
  MAX_PROCESS_INPUT_BYTES,
  MEM_MIB_RANGE,
  METADATA_LIMITS,
  PROCESS_TIMEOUT_SECS,
  TTL_SECS_RANGE,
  VCPU_RANGE,
} from '../lib/contract.js';
import { SANDBOX_STATES, SNAPSHOT_STATUSES } from '../core/state/store.js';

/** A gateway lists the sandboxes of a node it cannot reach as `lost` (no node ever says it). */
export const SANDBOX_LIST_STATES = [...SANDBOX_STATES, 'lost'] as const;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = { [k: string]: Json };

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (min: number, max: number, extra: Schema = {}): Schema => ({
  type: 'integer',
  minimum: min,
  maximum: max,
  ...extra,
});
const nullable = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] });
const obj = (required: string[], properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: 'object',
  required,
  properties,
  additionalProperties: false,
  ...extra,
});
const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const bool = { type: 'boolean' } as const;
const json = (schema: Schema): Schema => ({ content: { 'application/json': { schema } } });
const reply = (description: string, schema: Schema): Schema => ({ description, ...json(schema) });
const noContent = { description: 'done, no body' } as const;

const pathQuery = {
  name: 'path',
  in: 'query',
  required: true,
  description: 'absolute path inside the guest',
  schema: ref('GuestPath'),
};
const trueFalse = str({ enum: ['true', 'false'] });
const tagParam = { name: 'tag', in: 'path', required: true, schema: ref('Tag') };
const idParam = { name: 'id', in: 'path', required: true, schema: ref('SandboxId') };
const errors = { default: reply('error: {"error","code"}', ref('Error')) };
const pidParam = { name: 'pid', in: 'path', required: true, schema: str({ pattern: '^[1-9][0-9]{0,9}$' }) };
const ptySide = int(1, MAX_PTY_DIMENSION);
const base64 = (maxBytes: number): Schema =>
  str({ maxLength: Math.ceil(maxBytes / 3) * 4, pattern: '^[A-Za-z0-9+/]*={0,2}$', contentEncoding: 'base64' });
/** A POST to one interactive process that answers 204: input, close-input, signal, resize. */
const processAction = (
  operationId: string,
  body: string,
  opts: { description?: string; bodyOptional?: boolean } = {},
): Schema => ({
  parameters: [idParam, pidParam],
  post: {
    operationId,
    ...(opts.description === undefined ? {} : { description: opts.description }),
    requestBody: { required: opts.bodyOptional !== true, ...json(ref(body)) },
    responses: { '204': noContent, ...errors },
  },
});
const ndjson = (description: string, line: string): Schema => ({
  description,
  content: { 'application/x-ndjson': { schema: ref(line) } },
});

/** The properties of a directory entry (files.list, files.stat). */
const fileEntryProperties: Record<string, Schema> = {
  name: str(),
  type: str({ enum: ['file', 'dir', 'symlink', 'other'] }),
  size: { type: 'integer', minimum: 0 },
  mode: { type: 'integer', minimum: 0 },
  mtime_ms: { type: 'number' },
};

const schemas: Record<string, Schema> = {
  Tag: str({ pattern: TAG_PATTERN.source, description: '1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit' }),
  SandboxId: str({ pattern: SANDBOX_ID_PATTERN.source }),
  Timestamp: str({
    description: 'RFC 3339, UTC, milliseconds',
    pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$',
  }),
  Error: obj(['error', 'code'], {
    error: str({ description: 'what is wrong and what to do' }),
    code: str({ enum: Object.keys(ERROR_CODES) }),
    request_id: str(),
  }),
  Health: obj(['ok'], { ok: { const: true } }),
  Version: obj(['version', 'api', 'node', 'qemu', 'accel'], {
    version: str(),
    api: { const: 'v1' },
    node: str(),
    qemu: str(),
    accel: str({ enum: ['kvm', 'tcg'] }),
  }),
  Snapshot: obj(
    [
      'tag',
      'status',
      'created_at',
      'error',
      'image',
      'mem_mib',
      'vcpus',
      'accel',
      'qemu_version',
      'logical_bytes',
      'disk_bytes',
      'parent_tag',
      'branched_from',
      'ancestors',
      'dependents',
      'in_use_by',
    ],
    {
      tag: ref('Tag'),
      status: str({ enum: [...SNAPSHOT_STATUSES] }),
      created_at: str(),
      error: nullable(str()),
      image: nullable(str()),
      mem_mib: nullable({ type: 'integer' }),
      vcpus: nullable({ type: 'integer' }),
      accel: nullable(str({ enum: ['kvm', 'tcg'] })),
      qemu_version: nullable(str()),
      logical_bytes: { type: 'integer', minimum: 0 },
      disk_bytes: { type: 'integer', minimum: 0 },
      parent_tag: nullable(ref('Tag')),
      branched_from: nullable(str()),
      ancestors: arr(ref('Tag'), { description: 'root first, direct parent last' }),
      dependents: arr(ref('Tag')),
      in_use_by: arr(str()),
      nodes: arr(str(), { description: 'through a gateway: the nodes that hold it; absent from a node' }),
    },
  ),
  SnapshotList: obj(['snapshots'], { snapshots: arr(ref('Snapshot')) }),
  CreateSnapshot: obj(['tag'], {
    tag: ref('Tag'),
    image: { ...ref('Tag'), default: 'default' },
    mem_mib: int(MEM_MIB_RANGE.min, MEM_MIB_RANGE.max, { default: MEM_MIB_RANGE.default }),
    vcpus: int(VCPU_RANGE.min, VCPU_RANGE.max, { default: VCPU_RANGE.default }),
    warmup: arr(str({ minLength: 1, maxLength: 16_384 }), { maxItems: 64, default: [] }),
    boot_wait_secs: int(BOOT_WAIT_SECS.min, BOOT_WAIT_SECS.max, {
      default: BOOT_WAIT_SECS.default,
      description: 'readiness timeout of the parent boot (the agent answering), not a sleep',
    }),
  }),
  Metadata: {
    type: 'object',
    maxProperties: METADATA_LIMITS.entries,
    propertyNames: { pattern: `^[A-Za-z0-9_.-]{1,${METADATA_LIMITS.keyChars}}$` },
    additionalProperties: str({ maxLength: METADATA_LIMITS.valueChars }),
  },
  EgressPolicy: {
    description: `"allow", "deny" or {"allow": ["a.b.c.d/n", ...]}: at most ${MAX_ALLOW_CIDRS} IPv4 CIDRs, no host bits set`,
    anyOf: [
      str({ enum: ['allow', 'deny'] }),
      obj(['allow'], {
        allow: arr(str(), {
          description: `destinations the sandbox may open connections to (a.b.c.d/n, at most ${MAX_ALLOW_CIDRS}); [] denies everything`,
        }),
      }),
    ],
  },
  Sandbox: obj(
    [
      'id',
      'snapshot_tag',
      'state',
      'pid',
      'created_at',
      'expires_at',
      'accel',
      'memory_limit_mib',
      'cpu_limit',
      'pids_limit',
      'per_child_netns',
      'netns',
      'egress',
      'metadata',
      'reason',
      'warnings',
    ],
    {
      id: ref('SandboxId'),
      snapshot_tag: ref('Tag'),
      state: str({ enum: [...SANDBOX_LIST_STATES] }),
      pid: nullable({ type: 'integer' }),
      created_at: ref('Timestamp'),
      expires_at: nullable(ref('Timestamp')),
      accel: str({ enum: ['kvm', 'tcg'] }),
      memory_limit_mib: nullable({ type: 'integer', description: 'as requested; enforced by the sandbox cgroup' }),
      cpu_limit: nullable({ type: 'number', description: 'as requested (CPUs); enforced by the sandbox cgroup' }),
      pids_limit: nullable({ type: 'integer', description: 'as requested; enforced by the sandbox cgroup' }),
      per_child_netns: { ...bool, description: 'as requested; the sandbox runs in its own network namespace' },
      netns: nullable(str({ description: 'the network namespace (ip netns) when per_child_netns is set' })),
      egress: {
        ...nullable(ref('EgressPolicy')),
        description:
          "the egress policy in force in the sandbox's namespace (the daemon's --default-egress when the spawn named none); null without per_child_netns",
      },
      metadata: ref('Metadata'),
      reason: nullable(str()),
      warnings: arr(str()),
      node: str({ description: 'through a gateway: the node that runs it (its --node-name); absent from a node' }),
    },
  ),
  SandboxList: obj(['sandboxes'], { sandboxes: arr(ref('Sandbox')) }),
  CreateSandboxes: obj(['snapshot_tag'], {
    snapshot_tag: ref('Tag'),
    n: int(FORK_N_RANGE.min, FORK_N_RANGE.max, { default: FORK_N_RANGE.default }),
    memory_limit_mib: int(LIMIT_RANGES.memoryMiB.min, LIMIT_RANGES.memoryMiB.max, {
      description:
        'cgroup memory limit of the sandbox (QEMU + the pages it diverges from the snapshot); an OOM kill ends the sandbox `failed` with reason `oom`',
    }),
    cpu_limit: {
      type: 'number',
      minimum: LIMIT_RANGES.cpuLimit.min,
      maximum: LIMIT_RANGES.cpuLimit.max,
      description:
        "CPU quota of the sandbox's cgroup in CPUs (0.5 = half of one CPU): cpu.max on cgroup v2, cpu.cfs_quota_us per 100 ms period on v1",
    },
    pids_limit: int(LIMIT_RANGES.pidsLimit.min, LIMIT_RANGES.pidsLimit.max, {
      description: "pids.max of the sandbox's cgroup: bounds QEMU's own threads, not processes inside the guest",
    }),
    per_child_netns: {
      ...bool,
      default: false,
      description:
        "own network namespace with a tap behind the guest NIC; egress per `egress`, else the daemon's --default-egress (deny unless set)",
    },
    egress: {
      ...ref('EgressPolicy'),
      description:
        "egress policy of the sandbox's namespace (needs per_child_netns: true); 169.254.0.0/16, the host and other sandboxes stay blocked whatever it says",
    },
    ttl_secs: int(TTL_SECS_RANGE.min, TTL_SECS_RANGE.max),
    metadata: ref('Metadata'),
  }),
  Branch: obj([], {
    tag: { ...ref('Tag'), description: 'output snapshot tag; default branch-<sandbox id>-<n>' },
    wait: {
      ...bool,
      default: true,
      description: 'answer 201 once the snapshot is ready (false: 202 once the source runs again)',
    },
    downtime_ms: int(DOWNTIME_MS_RANGE.min, DOWNTIME_MS_RANGE.max, {
      default: DOWNTIME_MS_RANGE.default,
      description:
        'KVM: target pause of the source for the final stop-and-copy (QEMU downtime-limit); no effect under TCG, where the source pauses for the whole copy',
    }),
  }),
  BranchResult: obj(['tag', 'sandbox_id', 'status', 'pause_ms', 'live_ms', 'total_ms', 'bytes'], {
    tag: ref('Tag'),
    sandbox_id: ref('SandboxId'),
    status: str({ enum: ['writing', 'ready'] }),
    pause_ms: { type: 'number', minimum: 0, description: 'source paused: QMP STOP to RESUME event timestamps' },
    live_ms: { type: 'number', minimum: 0, description: 'request start until the source ran again' },
    total_ms: { type: 'number', minimum: 0, description: 'request start until ready (wait=true) or live_ms' },
    bytes: { type: 'integer', minimum: 0, description: 'migration stream bytes written' },
    memory_bytes: { type: 'integer', minimum: 0, description: 'size of the new memory.bin (wait=true)' },
    snapshot: ref('Snapshot'),
  }),
  CreatedSandboxes: obj(['sandboxes', 'warnings'], { sandboxes: arr(ref('Sandbox')), warnings: arr(str()) }),
  Exec: {
    ...obj([], {
      args: arr(str({ maxLength: 128 * 1024 }), { minItems: 1, maxItems: 4096, description: 'argv, no shell' }),
      cmd: str({ minLength: 1, maxLength: 256 * 1024, description: 'run by /bin/sh -c' }),
      env: {
        type: 'object',
        maxProperties: 4096,
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        additionalProperties: str({ maxLength: 128 * 1024 }),
      },
      cwd: str({ minLength: 1, maxLength: MAX_PATH_BYTES, pattern: '^/[^\\u0000]*$' }),
      stdin: str({ maxLength: MAX_EXEC_STDIN_BYTES, description: 'UTF-8 text' }),
      timeout_secs: int(EXEC_TIMEOUT_SECS.min, EXEC_TIMEOUT_SECS.max, { default: EXEC_TIMEOUT_SECS.default }),
    }),
    oneOf: [{ required: ['args'] }, { required: ['cmd'] }],
  },
  ExecResult: obj(['exit_code', 'signal', 'stdout', 'stderr', 'truncated', 'timed_out', 'duration_ms'], {
    exit_code: nullable({ type: 'integer' }),
    signal: nullable(str()),
    stdout: str({ description: 'UTF-8 (invalid sequences replaced)' }),
    stderr: str(),
    truncated: bool,
    timed_out: bool,
    duration_ms: { type: 'number', minimum: 0 },
  }),
  ExecStreamLine: {
    description: 'one NDJSON line of a streaming exec: output chunks as they come, then one exit or error line',
    oneOf: [
      obj(['type', 'data'], { type: str({ enum: ['stdout', 'stderr'] }), data: str() }),
      obj(['type', 'exit_code', 'signal', 'truncated', 'timed_out', 'duration_ms'], {
        type: { const: 'exit' },
        exit_code: nullable({ type: 'integer' }),
        signal: nullable(str()),
        truncated: bool,
        timed_out: bool,
        duration_ms: { type: 'number', minimum: 0 },
      }),
      obj(['type', 'error', 'code'], { type: { const: 'error' }, error: str(), code: str() }),
    ],
  },
  ProcessStart: {
    ...obj([], {
      args: arr(str({ maxLength: 128 * 1024 }), { minItems: 1, maxItems: 4096, description: 'argv, no shell' }),
      cmd: str({ minLength: 1, maxLength: 256 * 1024, description: 'run by /bin/sh -c' }),
      env: {
        type: 'object',
        maxProperties: 4096,
        propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        additionalProperties: str({ maxLength: 128 * 1024 }),
      },
      cwd: str({ minLength: 1, maxLength: MAX_PATH_BYTES, pattern: '^/[^\\u0000]*$' }),
      pty: obj(['cols', 'rows'], { cols: ptySide, rows: ptySide }, { description: 'run on a pseudo-terminal' }),
      stdin: { ...bool, default: false, description: 'keep stdin open for .../input (a pty always takes input)' },
      timeout_secs: int(PROCESS_TIMEOUT_SECS.min, PROCESS_TIMEOUT_SECS.max, {
        default: PROCESS_TIMEOUT_SECS.default,
        description: 'the whole process group is killed at it; 0: none',
      }),
      tag: str({ maxLength: 256, description: 'your label, shown in the list' }),
    }),
    oneOf: [{ required: ['args'] }, { required: ['cmd'] }],
  },
  ProcessEventLine: {
    description:
      'one NDJSON line of a process: start (first, from POST .../processes only), output chunks (base64) as they come, then one end or error line',
    oneOf: [
      obj(['type', 'pid'], { type: { const: 'start' }, pid: { type: 'integer', minimum: 1 } }),
      obj(['type', 'data'], { type: str({ enum: ['stdout', 'stderr', 'pty'] }), data: base64(1 << 30) }),
      obj(['type', 'exit_code', 'signal', 'timed_out'], {
        type: { const: 'end' },
        exit_code: nullable({ type: 'integer' }),
        signal: nullable(str()),
        timed_out: bool,
        error: str({ description: 'why it ended without an exit status (the sandbox released, the agent gone)' }),
      }),
      obj(['type', 'error', 'code'], { type: { const: 'error' }, error: str(), code: str() }),
    ],
  },
  ProcessInfo: obj(['pid', 'env', 'pty'], {
    pid: { type: 'integer', minimum: 1 },
    tag: str(),
    args: arr(str()),
    cmd: str(),
    env: { type: 'object', additionalProperties: str() },
    cwd: str(),
    pty: bool,
  }),
  ProcessList: obj(['processes'], { processes: arr(ref('ProcessInfo')) }),
  ProcessInput: obj(['data'], { data: base64(MAX_PROCESS_INPUT_BYTES) }),
  ProcessSignal: obj(['signal'], { signal: str({ enum: [...PROCESS_SIGNALS] }) }),
  ProcessResize: obj(['cols', 'rows'], { cols: ptySide, rows: ptySide }),
  Eval: obj(['code'], {
    code: str({ maxLength: MAX_EVAL_CODE_BYTES }),
    language: str({ enum: ['js', 'python'], default: 'js' }),
    timeout_secs: int(EVAL_TIMEOUT_SECS.min, EVAL_TIMEOUT_SECS.max, { default: EVAL_TIMEOUT_SECS.default }),
  }),
  EvalResult: obj(['value', 'stdout', 'stderr', 'truncated', 'error'], {
    value: { description: 'the JSON value of the last expression' },
    stdout: str(),
    stderr: str(),
    truncated: bool,
    error: nullable(obj(['name', 'message'], { name: str(), message: str(), stack: str() })),
  }),
  Ping: obj(['ok', 'uptime_ms', 'agent_version', 'latency_ms'], {
    ok: { const: true },
    uptime_ms: { type: 'number', minimum: 0 },
    agent_version: str(),
    latency_ms: { type: 'number', minimum: 0 },
  }),
  Empty: obj([], {}),
  FileWritten: obj(['path', 'size', 'sha256'], {
    path: str(),
    size: { type: 'integer', minimum: 0 },
    sha256: str({ pattern: '^[0-9a-f]{64}$' }),
  }),
  GuestPath: str({
    minLength: 1,
    maxLength: MAX_PATH_BYTES,
    pattern: '^/[^\\u0000]*$',
    description: 'absolute path inside the guest',
  }),
  FileEntry: obj(['name', 'type', 'size', 'mode', 'mtime_ms'], fileEntryProperties),
  FileInfo: obj(['path', 'name', 'type', 'size', 'mode', 'mtime_ms'], {
    path: str({ description: 'the path asked about' }),
    ...fileEntryProperties,
  }),
  FileList: obj(['path', 'entries', 'truncated'], {
    path: str(),
    entries: arr(ref('FileEntry'), { maxItems: MAX_LIST_ENTRIES }),
    truncated: bool,
  }),
  MakeDir: obj(['path'], {
    path: ref('GuestPath'),
    parents: { ...bool, default: false, description: 'also make missing parents; an existing directory is no error' },
  }),
  MadeDir: obj(['path', 'created'], {
    path: str(),
    created: { ...bool, description: 'false: a directory was already there (parents: true)' },
  }),
  Rename: obj(['from', 'to'], { from: ref('GuestPath'), to: ref('GuestPath') }),
  SetTtl: obj(['ttl_secs'], {
    ttl_secs: int(TTL_SECS_RANGE.min, TTL_SECS_RANGE.max, {
      description: 'the sandbox now expires this many seconds from now',
    }),
  }),
  FeatureStatus: obj(['available', 'reason'], { available: bool, reason: nullable(str()) }),
  Capabilities: obj(['root', 'effective', 'missing', 'cgroup_mode', 'features', 'probed_at'], {
    root: { ...bool, description: 'the daemon runs as uid 0 (without it: no cgroups or namespaces)' },
    effective: arr(str({ pattern: '^CAP_[A-Z0-9_]+$' }), { description: 'effective capabilities of the daemon' }),
    missing: arr(str({ pattern: '^CAP_[A-Z0-9_]+$' }), {
      description: 'capabilities some feature needs that the daemon lacks',
    }),
    cgroup_mode: str({ enum: ['v2', 'v1', 'hybrid', 'none'] }),
    features: obj([...FEATURES], Object.fromEntries(FEATURES.map((f) => [f, ref('FeatureStatus')])), {
      description: 'probed at start-up; a spawn asking for an unavailable one gets 503 feature_unavailable',
    }),
    probed_at: ref('Timestamp'),
  }),
  NodeInfo: obj(['name', 'key', 'version', 'accel', 'qemu', 'cpus', 'memory', 'sandboxes', 'snapshots', 'features'], {
    name: str({ description: '--node-name (default: the host name)' }),
    key: str({ pattern: '^[a-z2-7]{3}$', description: 'the 3 characters after sb- of every sandbox id it makes' }),
    version: str(),
    accel: str({ enum: ['kvm', 'tcg'] }),
    qemu: str(),
    cpus: { type: 'integer', minimum: 1 },
    memory: obj(['total_bytes', 'available_bytes'], {
      total_bytes: { type: 'integer', minimum: 0 },
      available_bytes: { type: 'integer', minimum: 0, description: 'MemAvailable' },
    }),
    sandboxes: obj(['active', 'max'], {
      active: { type: 'integer', minimum: 0, description: 'creating, running or stopping' },
      max: { type: 'integer', minimum: 1, description: '--max-sandboxes' },
    }),
    snapshots: arr(ref('Tag'), { description: 'tags of the ready snapshots it holds' }),
    features: obj([...FEATURES], Object.fromEntries(FEATURES.map((f) => [f, bool]))),
  }),
  PackStored: obj(['tag', 'sha256', 'bytes', 'snapshots'], {
    tag: ref('Tag'),
    sha256: str({ pattern: '^[0-9a-f]{64}$' }),
    bytes: { type: 'integer', minimum: 0, description: 'compressed pack bytes received' },
    snapshots: arr(obj(['tag', 'stored_as', 'action'], { tag: ref('Tag'), stored_as: ref('Tag'), action: str() })),
  }),
};

export const OPENAPI_DOCUMENT = {
  openapi: '3.1.0',
  info: {
    title: 'forkd-controller',
    version: FORKD_VERSION,
    description:
      'Snapshots and copy-on-write sandboxes on one host. Every route but GET /healthz needs `Authorization: Bearer <token>` when the daemon has a token file. Errors are {"error","code"}.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas,
  },
  security: [{ bearer: [] }],
  paths: {
    '/healthz': {
      get: { operationId: 'healthz', security: [], responses: { '200': reply('alive', ref('Health')), ...errors } },
    },
    '/version': {
      get: { operationId: 'version', responses: { '200': reply('build facts', ref('Version')), ...errors } },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        responses: {
          '200': { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: str() } } },
          ...errors,
        },
      },
    },
    '/v1/openapi.json': {
      get: {
        operationId: 'openapi',
        responses: { '200': reply('this document', { type: 'object' }), ...errors },
      },
    },
    '/v1/capabilities': {
      get: {
        operationId: 'capabilities',
        description:
          "Which isolation features this daemon's host and privileges allow (probed at start-up: capabilities, cgroup writes, network namespaces, nftables).",
        responses: { '200': reply('the start-up probe', ref('Capabilities')), ...errors },
      },
    },
    '/v1/node': {
      get: {
        operationId: 'nodeInfo',
        description:
          'Capacity of this node for a gateway placing spawns: memory, sandboxes and their cap, snapshots held.',
        responses: { '200': reply('this node now', ref('NodeInfo')), ...errors },
      },
    },
    '/v1/snapshots': {
      get: {
        operationId: 'listSnapshots',
        responses: { '200': reply('all snapshots', ref('SnapshotList')), ...errors },
      },
      post: {
        operationId: 'createSnapshot',
        description:
          'Boots a parent from an image, runs the warm-up commands, saves it. Answers at once with status `writing`; poll GET /v1/snapshots/{tag}. 507 without free space for the RAM (plus a margin) in the data dir.',
        requestBody: { required: true, ...json(ref('CreateSnapshot')) },
        responses: { '202': reply('build started', ref('Snapshot')), ...errors },
      },
    },
    '/v1/snapshots/{tag}': {
      parameters: [tagParam],
      get: { operationId: 'getSnapshot', responses: { '200': reply('one snapshot', ref('Snapshot')), ...errors } },
      delete: {
        operationId: 'deleteSnapshot',
        parameters: [
          { name: 'cascade', in: 'query', required: false, schema: trueFalse, description: 'also delete dependents' },
          { name: 'force', in: 'query', required: false, schema: trueFalse, description: 'orphan dependents' },
        ],
        responses: {
          '200': reply('deleted tags, dependents first', obj(['deleted'], { deleted: arr(ref('Tag')) })),
          ...errors,
        },
      },
    },
    '/v1/snapshots/{tag}/pack': {
      parameters: [tagParam],
      get: {
        operationId: 'getSnapshotPack',
        description:
          'The snapshot as a pack (.forkd.tar.zst, as `forkd pack` writes it), with Content-Length and its sha256 in X-Forkd-Pack-Sha256.',
        responses: {
          '200': {
            description: 'the pack bytes',
            content: { 'application/zstd': { schema: str({ contentMediaType: 'application/zstd' }) } },
          },
          ...errors,
        },
      },
      put: {
        operationId: 'putSnapshotPack',
        description:
          'Stores a pack streamed as the body under {tag}: its sha256 must equal the `sha256` parameter, then it goes through every check of `forkd unpack` (hostile-pack rules, compatibility, size and free disk). 409 if the tag exists (unless force=true); 507 when the pack or its files do not fit on the data dir disk.',
        parameters: [
          { name: 'sha256', in: 'query', required: true, schema: str({ pattern: '^[0-9a-f]{64}$' }) },
          { name: 'force', in: 'query', required: false, schema: trueFalse },
        ],
        requestBody: {
          required: true,
          content: { 'application/zstd': { schema: str({ contentMediaType: 'application/zstd' }) } },
        },
        responses: { '201': reply('verified and stored', ref('PackStored')), ...errors },
      },
    },
    '/v1/sandboxes': {
      get: {
        operationId: 'listSandboxes',
        parameters: [
          { name: 'snapshot_tag', in: 'query', required: false, schema: ref('Tag') },
          { name: 'state', in: 'query', required: false, schema: str({ enum: [...SANDBOX_LIST_STATES] }) },
        ],
        responses: { '200': reply('sandboxes, oldest first', ref('SandboxList')), ...errors },
      },
      post: {
        operationId: 'createSandboxes',
        description:
          'Restores n children of a snapshot; answers when every child is ready (its agent answered) or failed.',
        requestBody: { required: true, ...json(ref('CreateSandboxes')) },
        responses: { '201': reply('the sandboxes, each running or failed', ref('CreatedSandboxes')), ...errors },
      },
    },
    '/v1/sandboxes/{id}': {
      parameters: [idParam],
      get: { operationId: 'getSandbox', responses: { '200': reply('one sandbox', ref('Sandbox')), ...errors } },
      delete: { operationId: 'deleteSandbox', responses: { '204': noContent, ...errors } },
    },
    '/v1/sandboxes/{id}/ttl': {
      parameters: [idParam],
      post: {
        operationId: 'setSandboxTtl',
        description:
          "Sets a running sandbox's lifetime: it now expires ttl_secs from now (kept across a daemon restart). 409 when it is not running.",
        requestBody: { required: true, ...json(ref('SetTtl')) },
        responses: { '200': reply('the sandbox with its new expires_at', ref('Sandbox')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/branch': {
      parameters: [idParam],
      post: {
        operationId: 'branchSandbox',
        description:
          "Snapshots a running sandbox into a new forkable snapshot while it keeps running (under KVM a live pre-copy, the source pausing only for the final stop-and-copy; under TCG the source pauses for the whole copy: docs/API.md) whose parent is the sandbox's snapshot. 503 with Retry-After over --branch-concurrency, 409 for a tag that exists or is being branched, 507 without free space for the RAM.",
        requestBody: { required: false, ...json(ref('Branch')) },
        responses: {
          '201': reply('the snapshot is ready', ref('BranchResult')),
          '202': reply('the source runs again; the snapshot is still writing', ref('BranchResult')),
          ...errors,
        },
      },
    },
    '/v1/sandboxes/{id}/exec': {
      parameters: [idParam],
      post: {
        operationId: 'exec',
        requestBody: { required: true, ...json(ref('Exec')) },
        responses: { '200': reply('the finished command', ref('ExecResult')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/exec/stream': {
      parameters: [idParam],
      post: {
        operationId: 'execStream',
        requestBody: { required: true, ...json(ref('Exec')) },
        responses: {
          '200': {
            description: 'NDJSON, one ExecStreamLine per line, flushed as output arrives',
            content: { 'application/x-ndjson': { schema: ref('ExecStreamLine') } },
          },
          ...errors,
        },
      },
    },
    '/v1/sandboxes/{id}/processes': {
      parameters: [idParam],
      get: {
        operationId: 'listProcesses',
        responses: { '200': reply('the running interactive processes', ref('ProcessList')), ...errors },
      },
      post: {
        operationId: 'startProcess',
        description:
          'Starts an interactive process (stdin kept open, or a pseudo-terminal) and streams its events until it ends. The process outlives this response: reconnect with GET .../events; only a signal, its timeout or the sandbox ending stops it.',
        requestBody: { required: true, ...json(ref('ProcessStart')) },
        responses: { '200': ndjson('NDJSON, one ProcessEventLine per line', 'ProcessEventLine'), ...errors },
      },
    },
    '/v1/sandboxes/{id}/processes/{pid}/events': {
      parameters: [idParam, pidParam],
      get: {
        operationId: 'connectProcess',
        responses: { '200': ndjson('NDJSON: its events from now on, then end', 'ProcessEventLine'), ...errors },
      },
    },
    '/v1/sandboxes/{id}/processes/{pid}/input': processAction('processInput', 'ProcessInput', {
      description: 'Bytes for its stdin or terminal, in order; answers once the guest took them (back-pressure).',
    }),
    '/v1/sandboxes/{id}/processes/{pid}/close-input': processAction('closeProcessInput', 'Empty', {
      bodyOptional: true,
      description: 'End of input (a terminal gets ^D).',
    }),
    '/v1/sandboxes/{id}/processes/{pid}/signal': processAction('signalProcess', 'ProcessSignal'),
    '/v1/sandboxes/{id}/processes/{pid}/resize': processAction('resizeProcess', 'ProcessResize'),
    '/v1/sandboxes/{id}/eval': {
      parameters: [idParam],
      post: {
        operationId: 'eval',
        requestBody: { required: true, ...json(ref('Eval')) },
        responses: { '200': reply('value or error of the code', ref('EvalResult')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/ping': {
      parameters: [idParam],
      post: {
        operationId: 'ping',
        requestBody: { required: false, ...json(ref('Empty')) },
        responses: { '200': reply('the agent answered', ref('Ping')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/files': {
      parameters: [idParam, pathQuery],
      get: {
        operationId: 'readFile',
        responses: {
          '200': {
            description: 'file bytes',
            content: { 'application/octet-stream': { schema: str({ contentMediaType: 'application/octet-stream' }) } },
          },
          ...errors,
        },
      },
      put: {
        operationId: 'writeFile',
        parameters: [{ name: 'mode', in: 'query', required: false, schema: str({ pattern: '^[0-7]{3,4}$' }) }],
        requestBody: {
          required: true,
          content: { 'application/octet-stream': { schema: str({ contentMediaType: 'application/octet-stream' }) } },
        },
        responses: { '200': reply('written (atomically)', ref('FileWritten')), ...errors },
      },
      delete: {
        operationId: 'removeFile',
        parameters: [{ name: 'recursive', in: 'query', required: false, schema: trueFalse }],
        responses: { '204': noContent, ...errors },
      },
    },
    '/v1/sandboxes/{id}/files/list': {
      parameters: [idParam, pathQuery],
      get: { operationId: 'listFiles', responses: { '200': reply('directory entries', ref('FileList')), ...errors } },
    },
    '/v1/sandboxes/{id}/files/stat': {
      parameters: [idParam, pathQuery],
      get: {
        operationId: 'statFile',
        description: 'lstat: a final symlink is described, not followed. 404 not_found when nothing is there.',
        responses: { '200': reply('the entry', ref('FileInfo')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/files/mkdir': {
      parameters: [idParam],
      post: {
        operationId: 'makeDir',
        description:
          'Makes a directory. Without parents: 404 when the parent is missing, 409 already_exists when anything is there.',
        requestBody: { required: true, ...json(ref('MakeDir')) },
        responses: { '200': reply('the directory is there', ref('MadeDir')), ...errors },
      },
    },
    '/v1/sandboxes/{id}/files/rename': {
      parameters: [idParam],
      post: {
        operationId: 'renameFile',
        description:
          'rename(2) in the guest: an existing `to` is replaced (a file, or an empty directory by a directory); 404 when `from` is missing; both on one file system.',
        requestBody: { required: true, ...json(ref('Rename')) },
        responses: { '200': reply('the entry now at `to`', ref('FileInfo')), ...errors },
      },
    },
  },
} as const;
