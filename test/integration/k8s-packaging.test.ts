// packaging/k8s renders and validates: `kubectl kustomize` of the base and each overlay, every
// rendered object through the kubernetes-models validators (the Kubernetes OpenAPI schemas),
// the posture each variant promises (privileged + writable cgroup mount in base/tcg; a KVM
// device-plugin resource with only added NET_ADMIN/SYS_ADMIN, not privileged, in kvm; probes on
// /healthz; dedicated pool), and the shipped Secret's token is refused by the daemon. The
// Containerfile installs the packages `forkd setup` installs.
// test-lane: host (no guest, nothing host-wide: scripts/run-tests.mjs runs it beside the guest suites)
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { REQUIRED_PACKAGES } from '../../src/host/apt.js';
import { findSystemTool } from '../../src/host/netns-detect.js';
import { daemonArgs, runDaemonToExit } from '../helpers/controller.js';

const pexec = promisify(execFile);
const K8S = fileURLToPath(new URL('../../../packaging/k8s/', import.meta.url));
const CONTAINERFILE = fileURLToPath(new URL('../../../packaging/container/Containerfile', import.meta.url));
const VARIANTS = ['base', 'overlays/tcg', 'overlays/kvm'] as const;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };
interface Container {
  name: string;
  args?: string[];
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: { httpGet?: { path: string } };
  livenessProbe?: { httpGet?: { path: string } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  env?: { name: string; value?: string }[];
}
interface PodSpec {
  containers: Container[];
  nodeSelector?: Record<string, string>;
  tolerations?: { key: string }[];
  volumes?: { name: string; hostPath?: { path: string } }[];
}

/** The model class of an apiVersion/kind, e.g. kubernetes-models/apps/v1/DaemonSet. */
async function validateObject(o: Obj): Promise<void> {
  const mod = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<
    string,
    new (data: unknown) => { validate(): void }
  >;
  const Model = mod[o.kind];
  assert.ok(Model, `kubernetes-models has no ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}

function podSpec(objs: Obj[], kind: string, name: string): PodSpec {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} rendered`);
  return (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

void describe('Kubernetes packaging', () => {
  let kubectl: string | undefined;
  const rendered = new Map<string, Obj[]>();
  let root = '';
  before(async () => {
    // FORKD_KUBECTL: another kubectl to render with (e.g. Debian's 1.20 with kustomize 2.0).
    kubectl = process.env.FORKD_KUBECTL ?? (await findSystemTool('kubectl'));
    root = await mkdtemp(join(tmpdir(), 'forkd-k8s-'));
    await chmod(root, 0o755); // the daemon refuses a data dir the VM user cannot traverse
  });
  after(() => rm(root, { recursive: true, force: true }));

  for (const variant of VARIANTS) {
    void it(`kubectl kustomize ${variant} renders objects valid against the Kubernetes schemas`, async (t) => {
      if (!kubectl) return t.skip('kubectl is not installed (.ci/run installs Debian kubernetes-client)');
      const { stdout } = await pexec(kubectl, ['kustomize', join(K8S, variant)], { maxBuffer: 16 << 20 });
      const docs = parseAllDocuments(stdout).map((d) => d.toJSON() as Obj);
      assert.ok(docs.length >= 7, `${docs.length} objects`);
      for (const o of docs) {
        await validateObject(o);
        if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'forkd', `${o.kind}/${o.metadata.name}`);
      }
      const kinds = docs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
      for (const k of [
        'Namespace/forkd',
        'ServiceAccount/forkd',
        'Secret/forkd-token',
        'DaemonSet/forkd-node',
        'Service/forkd-nodes',
        'Deployment/forkd-gateway',
        'Service/forkd-gateway',
      ])
        assert.ok(kinds.includes(k), `${variant} has ${k}`);
      rendered.set(variant, docs);
    });
  }

  void it('each variant has the posture it documents', (t) => {
    if (rendered.size < VARIANTS.length) return t.skip('not rendered (kubectl missing)');
    for (const variant of VARIANTS) {
      const objs = rendered.get(variant)!;
      const spec = podSpec(objs, 'DaemonSet', 'forkd-node');
      const c = spec.containers[0]!;
      assert.equal(c.args?.[0], 'serve');
      assert.ok(c.args?.includes('--token-file=/etc/forkd/token/token'));
      assert.equal(c.readinessProbe?.httpGet?.path, '/healthz');
      assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, 'resource requests');
      assert.deepEqual(spec.nodeSelector, { 'forkd.dev/pool': 'sandboxes' });
      assert.ok(spec.tolerations?.some((x) => x.key === 'forkd.dev/pool'));
      const host = (p: string): boolean => spec.volumes?.some((v) => v.hostPath?.path === p) ?? false;
      assert.ok(host('/var/lib/forkd'), 'data dir on the node');
      assert.ok(host('/sys/fs/cgroup'), 'cgroup hierarchy mounted');
      const cg = c.volumeMounts?.find((m) => m.mountPath === '/sys/fs/cgroup');
      assert.ok(cg && !cg.readOnly, 'cgroup mount writable');
      const sc = c.securityContext;
      if (variant === 'overlays/kvm') {
        assert.equal(sc?.privileged, false);
        assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
        const added = sc?.capabilities?.add ?? [];
        for (const cap of ['NET_ADMIN', 'SYS_ADMIN']) assert.ok(added.includes(cap), cap);
        // Beyond root's usual defaults (which were dropped and are re-added by name), only these two.
        const dockerDefaults = ['SETUID', 'SETGID', 'CHOWN', 'FOWNER', 'DAC_OVERRIDE', 'KILL'];
        assert.deepEqual(added.filter((x) => !dockerDefaults.includes(x)).sort(), ['NET_ADMIN', 'SYS_ADMIN']);
        assert.equal(c.resources?.limits?.['devices.kubevirt.io/kvm'], '1');
        assert.equal(c.env?.find((e) => e.name === 'FORKD_ACCEL')?.value, 'kvm');
      } else {
        assert.equal(sc?.privileged, true, `${variant} is privileged`);
        if (variant === 'overlays/tcg') assert.equal(c.env?.find((e) => e.name === 'FORKD_ACCEL')?.value, 'tcg');
      }
      const nodes = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'forkd-nodes') as unknown as {
        spec: { clusterIP: string };
      };
      assert.equal(nodes.spec.clusterIP, 'None', 'headless');
      const gw = podSpec(objs, 'Deployment', 'forkd-gateway').containers[0]!;
      assert.equal(gw.args?.[0], 'gateway');
      assert.ok(gw.args?.some((a) => a.startsWith('--nodes-dns=forkd-nodes.forkd.svc')));
      assert.ok(!gw.securityContext?.privileged);
    }
  });

  void it("the daemon refuses the shipped Secret's placeholder token", async () => {
    const text = await readFile(join(K8S, 'base', 'secret-token.yaml'), 'utf8');
    const secret = parseAllDocuments(text)[0]!.toJSON() as { data: { token: string } };
    const token = Buffer.from(secret.data.token, 'base64').toString('utf8');
    assert.ok(token.length >= 16, 'long enough: refused for being a placeholder, not for its length');
    const file = join(root, 'token');
    await writeFile(file, token, { mode: 0o600 });
    await chmod(file, 0o600);
    const r = await runDaemonToExit(daemonArgs(join(root, 'data'), root, ['--token-file', file]));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refusing to start: token file .* still holds a placeholder/);
  });

  void it('the Containerfile installs the Debian packages forkd setup installs', async () => {
    const text = (await readFile(CONTAINERFILE, 'utf8')).replace(/\\\n/g, ' ');
    const line = /apt-get install -y --no-install-recommends ([^&]+)/.exec(text);
    assert.ok(line, 'an apt-get install line');
    const pkgs = line[1]!.trim().split(/\s+/);
    for (const p of REQUIRED_PACKAGES) assert.ok(pkgs.includes(p), `${p} installed`);
    assert.deepEqual(
      pkgs.filter((p) => !REQUIRED_PACKAGES.includes(p)),
      ['ca-certificates'],
    );
    assert.match(text, /FROM docker\.io\/library\/node:20-bookworm/);
  });
});
