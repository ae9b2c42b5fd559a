// The SDK's hand-written wire types stay in step with the OpenAPI document: the keys of each
// type (checked complete and exact by the compiler through `satisfies Record<keyof T, true>`)
// equal the schema's properties, and the error codes equal the API's. Plus the SDK's pure
// parts: daemon URL forms and calls that never reach the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OPENAPI_DOCUMENT } from '../../src/api/openapi.js';
import { ERROR_CODES } from '../../src/lib/errors.js';
import { CommandExitError, Controller, ForkdApiError, Sandbox } from 'forkd';
import type {
  ApiErrorCode,
  BranchResult,
  CreateSandboxesBody,
  EgressPolicy,
  EvalResult,
  ExecResult,
  FileEntry,
  FileInfo,
  FileList,
  MadeDir,
  PingResult,
  ApiSandbox,
  SnapshotInfo,
  VersionInfo,
  WriteFileResult,
} from 'forkd';
import { parseRemote } from '../../src/cli/commands/sandbox/cp.js';
import { egressFlag } from '../../src/cli/commands/sandbox/spawn.js';
import { numberFlag } from '../../src/cli/args.js';
import { LIMIT_RANGES } from '../../src/host/cgroups.js';

const keys = <T>(o: Record<keyof T, true>): string[] => Object.keys(o).sort();
const schemas = OPENAPI_DOCUMENT.components.schemas as Record<string, { properties?: Record<string, unknown> }>;
const props = (name: string): string[] => Object.keys(schemas[name]?.properties ?? {}).sort();

test('SDK wire types have exactly the properties of the OpenAPI schemas', () => {
  const cases: [string, string[]][] = [
    [
      'Snapshot',
      keys<SnapshotInfo>({
        tag: true,
        status: true,
        created_at: true,
        error: true,
        image: true,
        mem_mib: true,
        vcpus: true,
        accel: true,
        qemu_version: true,
        logical_bytes: true,
        disk_bytes: true,
        parent_tag: true,
        branched_from: true,
        ancestors: true,
        dependents: true,
        in_use_by: true,
        nodes: true,
      } satisfies Record<keyof SnapshotInfo, true>),
    ],
    [
      'Sandbox',
      keys<ApiSandbox>({
        id: true,
        snapshot_tag: true,
        state: true,
        pid: true,
        created_at: true,
        expires_at: true,
        accel: true,
        memory_limit_mib: true,
        cpu_limit: true,
        pids_limit: true,
        per_child_netns: true,
        netns: true,
        egress: true,
        metadata: true,
        reason: true,
        warnings: true,
        node: true,
      } satisfies Record<keyof ApiSandbox, true>),
    ],
    [
      'CreateSandboxes',
      keys<CreateSandboxesBody>({
        snapshot_tag: true,
        n: true,
        ttl_secs: true,
        metadata: true,
        memory_limit_mib: true,
        cpu_limit: true,
        pids_limit: true,
        per_child_netns: true,
        egress: true,
      } satisfies Record<keyof CreateSandboxesBody, true>),
    ],
    [
      'ExecResult',
      keys<ExecResult>({
        exit_code: true,
        signal: true,
        stdout: true,
        stderr: true,
        truncated: true,
        timed_out: true,
        duration_ms: true,
      } satisfies Record<keyof ExecResult, true>),
    ],
    [
      'EvalResult',
      keys<EvalResult>({ value: true, stdout: true, stderr: true, truncated: true, error: true } satisfies Record<
        keyof EvalResult,
        true
      >),
    ],
    ['FileList', keys<FileList>({ path: true, entries: true, truncated: true } satisfies Record<keyof FileList, true>)],
    [
      'FileEntry',
      keys<FileEntry>({ name: true, type: true, size: true, mode: true, mtime_ms: true } satisfies Record<
        keyof FileEntry,
        true
      >),
    ],
    [
      'FileInfo',
      keys<FileInfo>({ path: true, name: true, type: true, size: true, mode: true, mtime_ms: true } satisfies Record<
        keyof FileInfo,
        true
      >),
    ],
    ['MadeDir', keys<MadeDir>({ path: true, created: true } satisfies Record<keyof MadeDir, true>)],
    [
      'FileWritten',
      keys<WriteFileResult>({ path: true, size: true, sha256: true } satisfies Record<keyof WriteFileResult, true>),
    ],
    [
      'Ping',
      keys<PingResult>({ ok: true, uptime_ms: true, agent_version: true, latency_ms: true } satisfies Record<
        keyof PingResult,
        true
      >),
    ],
    [
      'Version',
      keys<VersionInfo>({ version: true, api: true, node: true, qemu: true, accel: true } satisfies Record<
        keyof VersionInfo,
        true
      >),
    ],
  ];
  cases.push([
    'BranchResult',
    keys<BranchResult>({
      tag: true,
      sandbox_id: true,
      status: true,
      pause_ms: true,
      live_ms: true,
      total_ms: true,
      bytes: true,
      memory_bytes: true,
      snapshot: true,
    } satisfies Record<keyof BranchResult, true>),
  ]);
  for (const [schema, typeKeys] of cases) {
    // The daemon may grow a schema (e.g. netns with isolation): the SDK must cover what it documents.
    assert.deepEqual(typeKeys, props(schema), `SDK type for ${schema}`);
  }
});

test('the SDK EgressPolicy type has the forms of the EgressPolicy schema', () => {
  const policy = schemas.EgressPolicy as unknown as {
    anyOf: [{ enum: string[] }, { required: string[]; properties: Record<string, unknown> }];
  };
  const words = Object.keys({ allow: true, deny: true } satisfies Record<Extract<EgressPolicy, string>, true>);
  assert.deepEqual(policy.anyOf[0].enum, words);
  const list = Object.keys({ allow: true } satisfies Record<keyof Extract<EgressPolicy, object>, true>);
  assert.deepEqual(Object.keys(policy.anyOf[1].properties), list);
  assert.deepEqual(policy.anyOf[1].required, list);
});

test('the SDK knows every API error code', () => {
  const codes = Object.keys({
    invalid_argument: true,
    invalid_tag: true,
    invalid_id: true,
    unauthorized: true,
    forbidden: true,
    not_found: true,
    method_not_allowed: true,
    request_timeout: true,
    conflict: true,
    already_exists: true,
    invalid_state: true,
    payload_too_large: true,
    unsupported_media_type: true,
    rate_limited: true,
    headers_too_large: true,
    incompatible_snapshot: true,
    corrupt_snapshot: true,
    busy: true,
    unavailable: true,
    audit_unavailable: true,
    feature_unavailable: true,
    insufficient_storage: true,
    timeout: true,
    boot_failed: true,
    vmm_error: true,
    agent_error: true,
    host_error: true,
    internal: true,
  } satisfies Record<ApiErrorCode, true>).sort();
  assert.deepEqual(codes, Object.keys(ERROR_CODES).sort());
});

test('daemon URLs: http, https, unix:/path; anything else is refused before any request', async () => {
  for (const url of ['http://127.0.0.1:8889', 'https://forkd.example:443', 'unix:/run/forkd.sock', 'http://[::1]:1'])
    assert.equal(new Controller({ url, token: 't' }).url, url);
  for (const url of ['ftp://x', 'unix:relative.sock', 'not a url'])
    assert.throws(
      () => new Controller({ url, token: 't' }),
      (e: unknown) => e instanceof ForkdApiError && e.code === 'invalid_argument' && e.status === 0,
    );
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    new Controller({ url: 'http://127.0.0.1:1', token: 't' }).version({ signal: ac.signal }),
    (e: unknown) => e instanceof ForkdApiError && e.code === 'aborted',
  );
});

test('forkd cp: ID:/path is remote, anything else local', () => {
  assert.deepEqual(parseRemote('sb-abcdefghijklmnop:/root/a b'), { id: 'sb-abcdefghijklmnop', path: '/root/a b' });
  assert.equal(parseRemote('./sb-abcdefghijklmnop:/x'), undefined);
  assert.equal(parseRemote('sb-abcdefghijklmnop:relative'), undefined);
  assert.equal(parseRemote('/tmp/file'), undefined);
});

test('forkd spawn: --egress allow|deny|CIDR[,CIDR...] and --cpu-limit are checked before any request', () => {
  assert.equal(egressFlag(undefined), undefined);
  assert.equal(egressFlag('allow'), 'allow');
  assert.equal(egressFlag('deny'), 'deny');
  assert.deepEqual(egressFlag('198.51.100.0/24, 203.0.113.10/32'), { allow: ['198.51.100.0/24', '203.0.113.10/32'] });
  const usage = (fn: () => unknown, pattern: RegExp): void =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof Error && 'code' in e && e.code === 'invalid_argument' && pattern.test(e.message),
    );
  usage(() => egressFlag('10.0.0.1/8'), /host bits set; did you mean 10\.0\.0\.0\/8/);
  usage(() => egressFlag('open'), /is not an IPv4 CIDR/);
  usage(() => egressFlag(','), /--egress must be allow, deny or CIDR/);
  assert.equal(numberFlag('cpu-limit', '0.5', LIMIT_RANGES.cpuLimit), 0.5);
  assert.equal(numberFlag('cpu-limit', '2', LIMIT_RANGES.cpuLimit), 2);
  assert.equal(numberFlag('cpu-limit', undefined, LIMIT_RANGES.cpuLimit), undefined);
  usage(() => numberFlag('cpu-limit', '0', LIMIT_RANGES.cpuLimit), /--cpu-limit must be from 0\.01 to 1024, got 0/);
  usage(() => numberFlag('cpu-limit', '1e3', LIMIT_RANGES.cpuLimit), /--cpu-limit must be a number/);
  usage(() => numberFlag('cpu-limit', '-1', LIMIT_RANGES.cpuLimit), /--cpu-limit must be a number/);
});

test('lifetimes and CommandExitError: checked and described in the SDK, before any request', async () => {
  // Port 1 answers nothing: an invalid_argument here proves no request was tried.
  const nowhere = { url: 'http://127.0.0.1:1', token: 't' };
  for (const timeoutMs of [-1, Number.NaN, 7 * 24 * 3600 * 1000 + 1])
    await assert.rejects(
      Sandbox.create('x', { ...nowhere, timeoutMs }),
      (e) => e instanceof ForkdApiError && e.code === 'invalid_argument',
    );
  await assert.rejects(Sandbox.create('x', { ...nowhere, timeoutMs: 1000, ttlSecs: 1 }), /not both/);
  await assert.rejects(
    Sandbox.setTimeout('sb-aaaaaaaaaaaaaaaa', 0, nowhere),
    (e) => e instanceof ForkdApiError && e.code === 'invalid_argument',
  );
  await assert.rejects(Sandbox.create('x', nowhere), (e) => e instanceof ForkdApiError && e.code === 'unreachable');
  const base = { signal: null, stdout: 'o', stderr: 'e', truncated: false, timedOut: false, durationMs: 5 };
  const exit3 = new CommandExitError({ ...base, exitCode: 3 });
  assert.deepEqual(
    [exit3.name, exit3.code, exit3.status, exit3.exitCode, exit3.stdout],
    ['CommandExitError', 'exit_error', 0, 3, 'o'],
  );
  assert.match(exit3.message, /exited with code 3/);
  assert.match(
    new CommandExitError({ ...base, exitCode: null, signal: 'SIGKILL', timedOut: true, durationMs: 1000 }).message,
    /timed out after 1000 ms/,
  );
  assert.match(new CommandExitError({ ...base, exitCode: null, signal: 'SIGTERM' }).message, /killed by SIGTERM/);
});
