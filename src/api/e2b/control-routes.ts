// E2B's control API (api.e2b.app), the part the `e2b` SDK's Sandbox class calls, over core:
// a template is a forkd snapshot tag, a sandbox's `timeout` its TTL (E2B's 300 s when absent),
// fork is BRANCH + spawn, a snapshot is a forkd tag. What forkd lacks answers 501 (or 400 for
// a create option) with a message the SDK shows in its SandboxError.
import type { BranchService } from '../../core/branch.js';
import type { SandboxAccess } from '../../core/controller/access.js';
import type { SandboxManager } from '../../core/controller/sandboxes.js';
import type { SnapshotService, SnapshotView } from '../../core/controller/snapshots.js';
import type { SandboxRow } from '../../core/state/store.js';
import { ForkdError, httpStatusOf, isForkdError, messageOf } from '../../lib/errors.js';
import { DEFAULT_LIFETIME_SECS, DOWNTIME_MS_RANGE, METADATA_LIMITS, TTL_SECS_RANGE } from '../../lib/contract.js';
import { E2bHttpError, unsupported } from './errors.js';
import { optBool, optInt, optObject, optStringMap } from './input.js';

/** What the SDK checks envd features against: octet-stream uploads and closeStdin yes, file metadata (0.6.2) no. */
export const ENVD_VERSION = '0.5.7';
/** E2B's default sandbox lifetime. */
export const DEFAULT_TIMEOUT_SECS = DEFAULT_LIFETIME_SECS;
const MAX_TIMEOUT_SECS = TTL_SECS_RANGE.max;
const MAX_FORKS = 100;
const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
/** Reported for a sandbox without a TTL (made by forkd's own API without ttl_secs). */
const NO_END = '9999-12-31T23:59:59.000Z';

export interface ControlCore {
  sandboxes: SandboxManager;
  snapshots: SnapshotService;
  branches: BranchService;
  access: SandboxAccess;
}

export interface ControlCall {
  method: string;
  path: string;
  query: URLSearchParams;
  body: () => Promise<Record<string, unknown>>;
  requestId: string;
}

export type ControlReply = { status: number; json?: unknown; headers?: Record<string, string> };

type Route = (core: ControlCore, call: ControlCall, id: string) => Promise<ControlReply>;

const ID = '([^/]+)';
const ROUTES: [method: string, pattern: RegExp, route: Route][] = [
  ['POST', /^\/(?:v2\/)?sandboxes$/, (c, call) => create(c, call)],
  ['GET', /^\/(?:v2\/)?sandboxes$/, (c, call) => Promise.resolve(list(c, call))],
  ['GET', new RegExp(`^/sandboxes/${ID}$`), (c, _call, id) => detail(c, id)],
  ['DELETE', new RegExp(`^/sandboxes/${ID}$`), (c, call, id) => kill(c, call, id)],
  ['POST', new RegExp(`^/sandboxes/${ID}/timeout$`), (c, call, id) => setTimeout(c, call, id)],
  ['POST', new RegExp(`^/(?:v2/)?sandboxes/${ID}/connect$`), (c, call, id) => connect(c, call, id)],
  ['POST', new RegExp(`^/sandboxes/${ID}/fork$`), (c, call, id) => fork(c, call, id)],
  ['POST', new RegExp(`^/sandboxes/${ID}/snapshots$`), (c, call, id) => createSnapshot(c, call, id)],
  ['GET', /^\/snapshots$/, (c, call) => listSnapshots(c, call)],
  ['DELETE', new RegExp(`^/templates/${ID}$`), (c, call, id) => deleteSnapshot(c, call, id)],
];

const UNSUPPORTED: [RegExp, string, string][] = [
  [
    /^\/sandboxes\/[^/]+\/(pause|resume)$/,
    'pause/resume',
    'snapshot the sandbox (createSnapshot) and create from it later',
  ],
  [
    /^\/sandboxes\/[^/]+\/(metrics|logs)$|^\/(v2\/)?sandboxes\/metrics$/,
    'sandbox metrics and logs',
    "use forkd's /metrics",
  ],
  [/^\/sandboxes\/[^/]+\/network$/, 'changing a running sandbox network', 'choose egress when creating the sandbox'],
  [
    /^\/(v\d\/)?templates(\/|$)/,
    'templates built from Dockerfiles',
    'build a forkd snapshot (forkd snapshot create) and use its tag',
  ],
  [/^\/volumes(\/|$)/, 'volumes', 'copy files in with files.write'],
  [/^\/secrets(\/|$)/, 'secrets', 'pass values as envs'],
];

export async function control(core: ControlCore, call: ControlCall): Promise<ControlReply> {
  for (const [method, pattern, route] of ROUTES) {
    const m = pattern.exec(call.path);
    if (m && method === call.method) return route(core, call, m[1] === undefined ? '' : decodeId(m[1]));
  }
  for (const [pattern, what, instead] of UNSUPPORTED) if (pattern.test(call.path)) throw unsupported(what, instead);
  throw new E2bHttpError(404, `no route ${call.method} ${call.path.slice(0, 200)} in forkd's E2B-compatible API`);
}

function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new E2bHttpError(404, 'sandbox not found (the id is not valid percent-encoding)');
  }
}

function timeoutSecs(body: Record<string, unknown>): number | undefined {
  return optInt(body, 'timeout', 1, MAX_TIMEOUT_SECS);
}

function sandboxJson(row: SandboxRow, token: string): Record<string, unknown> {
  return {
    sandboxID: row.id,
    templateID: row.snapshotTag,
    clientID: 'forkd',
    envdVersion: ENVD_VERSION,
    envdAccessToken: token,
    domain: null,
    trafficAccessToken: null,
  };
}

async function create(core: ControlCore, call: ControlCall): Promise<ControlReply> {
  const b = await call.body();
  const tag = typeof b.templateID === 'string' ? b.templateID : undefined;
  if (!tag) throw new E2bHttpError(400, 'templateID (a forkd snapshot tag) is required');
  refuseUnsupported(b);
  const metadata = optStringMap(b, 'metadata', METADATA_LIMITS.entries);
  const env = optStringMap(b, 'envVars') ?? {};
  const internet = optBool(b, 'allow_internet_access');
  const [row] = await spawn(core, call, b, {
    snapshotTag: tag,
    n: 1,
    metadata,
    // E2B's internet access is a namespace of the sandbox's own with egress allowed.
    ...(internet ? { perChildNetns: true, egress: 'allow' } : {}),
  });
  if (!row || row.state !== 'running')
    throw new E2bHttpError(500, `sandbox of ${tag} did not start: ${row?.reason ?? 'unknown reason'}`);
  return { status: 201, json: startedJson(core, row, env) };
}

type SpawnSpec = Omit<Parameters<SandboxManager['create']>[0], 'ttlSecs' | 'requestId'>;

/** Create and fork spawn alike: the body's `timeout` is the lifetime, E2B's default when absent. */
function spawn(
  core: ControlCore,
  call: ControlCall,
  b: Record<string, unknown>,
  spec: SpawnSpec,
): Promise<SandboxRow[]> {
  return core.sandboxes.create({ ...spec, ttlSecs: timeoutSecs(b) ?? DEFAULT_TIMEOUT_SECS, requestId: call.requestId });
}

/** A sandbox just started, as E2B answers it: with a new access token that carries `env`. */
function startedJson(core: ControlCore, row: SandboxRow, env: Record<string, string>): Record<string, unknown> {
  return sandboxJson(row, core.access.issue(row.id, env));
}

/** Options of E2B's create that forkd cannot honour: refused, never silently ignored. */
function refuseUnsupported(b: Record<string, unknown>): void {
  const no = (what: string): never => {
    throw new E2bHttpError(400, `forkd does not support ${what}`);
  };
  if (b.autoPause === true)
    no('pausing on timeout (lifecycle.onTimeout "pause"); the sandbox is killed at its timeout');
  if (optObject(b, 'autoResume')?.enabled === true) no('auto-resume');
  if (Array.isArray(b.volumeMounts) && b.volumeMounts.length > 0) no('volume mounts');
  if (b.mcp !== undefined && b.mcp !== null) no('the MCP gateway');
  const network = optObject(b, 'network');
  if (network && Object.values(network).some((v) => v !== undefined && v !== null))
    no('network rules (only allowInternetAccess); forkd egress is allow or deny per sandbox');
  if (optObject(b, 'iam') !== undefined) no('workload identity (iam)');
}

/** A sandbox as E2B shows it; only running sandboxes exist for E2B (a stopped one is "not found"). */
function runningRow(core: ControlCore, id: string): SandboxRow {
  let row: SandboxRow;
  try {
    row = core.sandboxes.get(id);
  } catch (err) {
    if (isForkdError(err, 'not_found') || isForkdError(err, 'invalid_id'))
      throw new E2bHttpError(404, `sandbox ${id.slice(0, 80)} not found`);
    throw err;
  }
  if (row.state !== 'running')
    throw new E2bHttpError(
      404,
      `sandbox ${row.id} is not running (${row.state}${row.reason ? `: ${row.reason}` : ''})`,
    );
  return row;
}

/** cpuCount and memoryMB come from the snapshot's layout; looked up once per tag per request. */
function layoutCache(core: ControlCore): (tag: string) => Promise<{ cpuCount: number; memoryMB: number }> {
  const seen = new Map<string, Promise<{ cpuCount: number; memoryMB: number }>>();
  return (tag) => {
    let p = seen.get(tag);
    if (!p) {
      p = core.snapshots.get(tag).then(
        (v: SnapshotView) => ({ cpuCount: v.meta?.layout.vcpus ?? 1, memoryMB: v.meta?.layout.memMiB ?? 0 }),
        () => ({ cpuCount: 1, memoryMB: 0 }), // deleted since (force): the sandbox still runs
      );
      seen.set(tag, p);
    }
    return p;
  };
}

async function listedJson(row: SandboxRow, layout: ReturnType<typeof layoutCache>): Promise<Record<string, unknown>> {
  return {
    sandboxID: row.id,
    templateID: row.snapshotTag,
    clientID: 'forkd',
    ...(await layout(row.snapshotTag)),
    diskSizeMB: 0,
    envdVersion: ENVD_VERSION,
    metadata: row.metadata,
    startedAt: row.createdAt,
    endAt: row.expiresAt ?? NO_END,
    state: 'running',
  };
}

async function detail(core: ControlCore, id: string): Promise<ControlReply> {
  const row = runningRow(core, id);
  const json = await listedJson(row, layoutCache(core));
  return { status: 200, json: { ...json, envdAccessToken: core.access.tokenOf(row.id), domain: null } };
}

/** GET /v2/sandboxes: metadata ("k=v&k2=v2", each part URL-encoded) and state filters, paged by id. */
async function list(core: ControlCore, call: ControlCall): Promise<ControlReply> {
  const q = call.query;
  const states = (q.get('state') ?? 'running,paused').split(',');
  const bad = states.find((s) => s !== 'running' && s !== 'paused');
  if (bad !== undefined)
    throw new E2bHttpError(400, `state must be running or paused, got ${JSON.stringify(bad.slice(0, 40))}`);
  const want = parseMetadataQuery(q.get('metadata'));
  const template = q.get('template');
  const limit = Number(q.get('limit') ?? DEFAULT_PAGE);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new E2bHttpError(400, `limit must be an integer 1..${MAX_PAGE}`);
  const after = q.get('nextToken');
  // forkd has no paused sandboxes: "paused" alone lists nothing.
  let rows = states.includes('running') ? core.sandboxes.list({ state: 'running' }) : [];
  rows = rows.filter(
    (r) =>
      (template === null || r.snapshotTag === template) && Object.entries(want).every(([k, v]) => r.metadata[k] === v),
  );
  if (q.get('order') === 'desc') rows.reverse();
  const start = after === null ? 0 : rows.findIndex((r) => r.id === after) + 1;
  const page = rows.slice(start, start + limit);
  const layout = layoutCache(core);
  const json = await Promise.all(page.map((r) => listedJson(r, layout)));
  const more = start + limit < rows.length;
  return { status: 200, json, headers: more ? { 'x-next-token': page[page.length - 1]!.id } : {} };
}

function parseMetadataQuery(text: string | null): Record<string, string> {
  if (!text) return {};
  const out: Record<string, string> = {};
  try {
    for (const [k, v] of new URLSearchParams(text)) out[decodeURIComponent(k)] = decodeURIComponent(v);
  } catch (err) {
    throw new E2bHttpError(400, `metadata query is not valid URL encoding: ${messageOf(err)}`);
  }
  return out;
}

async function kill(core: ControlCore, call: ControlCall, id: string): Promise<ControlReply> {
  let row: SandboxRow;
  try {
    row = core.sandboxes.get(id);
  } catch (err) {
    if (isForkdError(err, 'not_found') || isForkdError(err, 'invalid_id'))
      throw new E2bHttpError(404, `sandbox ${id.slice(0, 80)} not found`);
    throw err;
  }
  await core.sandboxes.delete(row.id, call.requestId);
  // A sandbox that had already ended (expired, failed) is gone now, and was not running: E2B says 404.
  if (row.state !== 'running') throw new E2bHttpError(404, `sandbox ${row.id} was not running (${row.state})`);
  return { status: 204 };
}

async function setTimeout(core: ControlCore, call: ControlCall, id: string): Promise<ControlReply> {
  const secs = timeoutSecs(await call.body());
  if (secs === undefined) throw new E2bHttpError(400, 'timeout (seconds) is required');
  core.sandboxes.setTtl(runningRow(core, id).id, secs);
  return { status: 204 };
}

async function connect(core: ControlCore, call: ControlCall, id: string): Promise<ControlReply> {
  const b = await call.body();
  const row = runningRow(core, id);
  const secs = timeoutSecs(b);
  // E2B extends a running sandbox's life to `timeout` from now, never shortens it.
  if (secs !== undefined && row.expiresAt !== null && Date.parse(row.expiresAt) < Date.now() + secs * 1000)
    core.sandboxes.setTtl(row.id, secs);
  return { status: 200, json: sandboxJson(core.sandboxes.get(row.id), core.access.tokenOf(row.id)) };
}

/** BRANCH the source once, then spawn `count` children of that snapshot; one result per fork. */
async function fork(core: ControlCore, call: ControlCall, id: string): Promise<ControlReply> {
  const b = await call.body();
  const count = optInt(b, 'count', 1, MAX_FORKS) ?? 1;
  const source = runningRow(core, id);
  const branch = await core.branches.start({
    sandboxId: source.id,
    downtimeMs: DOWNTIME_MS_RANGE.default,
    requestId: call.requestId,
  });
  await branch.done;
  const env = core.access.envOf(source.id);
  let rows: SandboxRow[];
  try {
    rows = await spawn(core, call, b, { snapshotTag: branch.tag, n: count, metadata: source.metadata });
  } catch (err) {
    if (!(err instanceof ForkdError)) throw err;
    const code = err.code === 'busy' ? 429 : httpStatusOf(err.code);
    return { status: 201, json: Array.from({ length: count }, () => ({ error: { code, message: err.message } })) };
  }
  const json = rows.map((row) =>
    row.state === 'running'
      ? { sandbox: startedJson(core, row, env) }
      : { error: { code: 500, message: `fork did not start: ${row.reason ?? 'unknown reason'}` } },
  );
  return { status: 201, json };
}

async function createSnapshot(core: ControlCore, call: ControlCall, id: string): Promise<ControlReply> {
  const b = await call.body();
  const name = typeof b.name === 'string' ? b.name : undefined;
  const source = runningRow(core, id);
  const branch = await core.branches.start({
    sandboxId: source.id,
    ...(name !== undefined ? { tag: name } : {}),
    downtimeMs: DOWNTIME_MS_RANGE.default,
    requestId: call.requestId,
  });
  await branch.done;
  return { status: 201, json: { snapshotID: branch.tag, names: [branch.tag] } };
}

async function listSnapshots(core: ControlCore, call: ControlCall): Promise<ControlReply> {
  const q = call.query;
  const source = q.get('sandboxID');
  const name = q.get('name');
  const limit = Number(q.get('limit') ?? DEFAULT_PAGE);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE)
    throw new E2bHttpError(400, `limit must be an integer 1..${MAX_PAGE}`);
  const all = (await core.snapshots.list()).filter(
    (s) => s.status === 'ready' && (source === null || s.branchedFrom === source) && (name === null || s.tag === name),
  );
  const after = q.get('nextToken');
  const start = after === null ? 0 : all.findIndex((s) => s.tag === after) + 1;
  const page = all.slice(start, start + limit);
  const more = start + limit < all.length;
  return {
    status: 200,
    json: page.map((s) => ({ snapshotID: s.tag, names: [s.tag] })),
    headers: more ? { 'x-next-token': page[page.length - 1]!.tag } : {},
  };
}

async function deleteSnapshot(core: ControlCore, call: ControlCall, tag: string): Promise<ControlReply> {
  try {
    await core.snapshots.delete(tag, { cascade: false, force: false, requestId: call.requestId });
  } catch (err) {
    if (isForkdError(err, 'invalid_tag')) throw new E2bHttpError(404, `snapshot ${tag.slice(0, 80)} not found`);
    throw err;
  }
  return { status: 204 };
}
