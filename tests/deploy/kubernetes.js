#!/usr/bin/env node
// kubernetes.js -- offline checks of conf/kubernetes/*.yaml: each object
// against the Kubernetes OpenAPI schema (kubernetes-models), unknown fields
// (the schemas allow them, the API server's strict validation does not),
// the deployment policy, and that the manifests agree with each other, with
// the Containerfile and with the mapping file they carry.
//
// Usage: node kubernetes.js MANIFEST_DIR CONTAINER_INI CONTAINERFILE SVCMAPD
// Prints one line per check; exits 1 if any failed.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { requirePackages, tap } = require('./tap');

requirePackages(['yaml', 'kubernetes-models']);
const YAML = require('yaml');

const [dir, containerIni, containerfile, svcmapd] = process.argv.slice(2);
if (!svcmapd) {
  console.error('usage: node kubernetes.js MANIFEST_DIR CONTAINER_INI CONTAINERFILE SVCMAPD');
  process.exit(2);
}

const TAP = tap('kubernetes.js');
const check = TAP.check;

// apiVersion/kind -> the kubernetes-models class that validates it.
const MODELS = {
  'v1/Namespace': ['kubernetes-models/v1', 'Namespace'],
  'v1/ConfigMap': ['kubernetes-models/v1', 'ConfigMap'],
  'v1/Service': ['kubernetes-models/v1', 'Service'],
  'v1/ServiceAccount': ['kubernetes-models/v1', 'ServiceAccount'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1', 'Deployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1', 'PodDisruptionBudget'],
};
// The compiled schema of each, for the unknown-field check.
const SCHEMAS = {
  'v1/Namespace': 'IoK8sApiCoreV1Namespace',
  'v1/ConfigMap': 'IoK8sApiCoreV1ConfigMap',
  'v1/Service': 'IoK8sApiCoreV1Service',
  'v1/ServiceAccount': 'IoK8sApiCoreV1ServiceAccount',
  'apps/v1/Deployment': 'IoK8sApiAppsV1Deployment',
  'policy/v1/PodDisruptionBudget': 'IoK8sApiPolicyV1PodDisruptionBudget',
};

/*
 * Fields the schema does not know. The compiled validators read every
 * property the schema names and enumerate the keys of maps (labels, data,
 * resources); so an own property of a non-map object that validation never
 * read is a field the schema does not have, such as a misspelled
 * `readOnlyRootFilesytem`, which plain validation accepts and the API server
 * rejects (or, with client-side validation off, silently drops).
 */
function unknownFields(validate, obj) {
  const read = new Map(); // object -> Set of keys read
  const maps = new Set(); // objects whose keys were enumerated
  const proxies = new WeakMap();
  function wrap(o) {
    if (o === null || typeof o !== 'object') return o;
    if (proxies.has(o)) return proxies.get(o);
    read.set(o, new Set());
    const p = new Proxy(o, {
      get(t, k, r) {
        if (typeof k === 'string') read.get(t).add(k);
        return wrap(Reflect.get(t, k, r));
      },
      ownKeys(t) {
        maps.add(t);
        return Reflect.ownKeys(t);
      },
      has(t, k) {
        if (typeof k === 'string') read.get(t).add(k);
        return Reflect.has(t, k);
      },
    });
    proxies.set(o, p);
    return p;
  }
  validate(wrap(obj));
  const unknown = [];
  (function walk(o, where) {
    if (o === null || typeof o !== 'object') return;
    const isArray = Array.isArray(o);
    for (const k of Object.keys(o)) {
      if (!isArray && !maps.has(o) && !(read.get(o) || new Set()).has(k)) unknown.push(`${where}.${k}`);
      walk(o[k], isArray ? `${where}[${k}]` : `${where}.${k}`);
    }
  })(obj, '');
  return unknown;
}

// ---- read every document of every manifest ----

const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
const objects = []; // {file, obj}
for (const f of files) {
  const text = fs.readFileSync(path.join(dir, f), 'utf8');
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  for (const d of docs) {
    const errs = d.errors.concat(d.warnings);
    check(errs.length === 0, `${f}: YAML parses`, errs.map((e) => e.message).join('; '));
    const obj = d.toJS();
    if (obj !== null && obj !== undefined) objects.push({ file: f, obj });
  }
}

const byKind = {};
for (const { file, obj } of objects) {
  if (obj.kind === 'Kustomization') {
    // Not a Kubernetes object: kustomize reads it. Its list must be the
    // other manifests, each once, so `kubectl apply -k` applies them all.
    const others = files.filter((f) => f !== file);
    const res = obj.resources || [];
    check(JSON.stringify([...res].sort()) === JSON.stringify(others),
      `${file}: resources are exactly the other manifests`, `${res} vs ${others}`);
    check(res[0] === 'namespace.yaml', `${file}: the namespace comes first`);
    continue;
  }
  const key = `${obj.apiVersion}/${obj.kind}`;
  const name = `${file}: ${obj.kind} ${obj.metadata && obj.metadata.name}`;
  const model = MODELS[key];
  if (!model) {
    check(false, `${name}: known apiVersion/kind`, `no model for ${key}`);
    continue;
  }
  const Cls = require(model[0])[model[1]];
  let err = null;
  try {
    new Cls(obj).validate();
  } catch (e) {
    err = e.message;
  }
  check(err === null, `${name}: valid against the ${key} schema`, err);
  // not in the package's exports: by path
  const root = path.dirname(require.resolve('kubernetes-models'));
  const { validate } = require(path.join(root, '_schemas', `${SCHEMAS[key]}.js`));
  const unknown = unknownFields(validate, obj);
  check(unknown.length === 0, `${name}: no unknown fields`, unknown.join(', '));
  if (obj.kind !== 'Namespace')
    check(obj.metadata.namespace === 'svcmapd', `${name}: in namespace svcmapd`);
  (byKind[obj.kind] = byKind[obj.kind] || []).push(obj);
}

// ---- policy ----

const one = (kind) => (byKind[kind] || [])[0];
const ns = one('Namespace');
const cm = one('ConfigMap');
const dep = one('Deployment');
const svc = one('Service');
const pdb = one('PodDisruptionBudget');
let missing = false;
for (const [k, o] of [['Namespace', ns], ['ConfigMap', cm], ['Deployment', dep], ['Service', svc],
  ['PodDisruptionBudget', pdb]]) {
  check(o !== undefined && byKind[k].length === 1, `exactly one ${k}`);
  missing = missing || o === undefined;
}
if (missing) {
  TAP.finish(true);
}

check(ns.metadata.name === 'svcmapd', 'the Namespace is svcmapd');
check((ns.metadata.labels || {})['pod-security.kubernetes.io/enforce'] === 'restricted',
  'the namespace enforces the restricted Pod Security Standard');

const spec = dep.spec;
const pod = spec.template.spec;
const labels = spec.template.metadata.labels || {};
const matches = (sel) => sel && Object.entries(sel).every(([k, v]) => labels[k] === v);
check(spec.replicas === 2, 'Deployment: 2 replicas');
check(matches(spec.selector.matchLabels), 'Deployment: selector matches the pod labels');
const ru = (spec.strategy || {}).rollingUpdate || {};
check(ru.maxUnavailable === 0, 'Deployment: rolling updates keep every replica (maxUnavailable 0)');

const anti = ((pod.affinity || {}).podAntiAffinity) || {};
const terms = (anti.requiredDuringSchedulingIgnoredDuringExecution || [])
  .concat((anti.preferredDuringSchedulingIgnoredDuringExecution || []).map((t) => t.podAffinityTerm));
check(terms.some((t) => t.topologyKey === 'kubernetes.io/hostname' &&
  matches((t.labelSelector || {}).matchLabels)),
  'Deployment: pod anti-affinity on kubernetes.io/hostname for its own pods');
check(pod.automountServiceAccountToken === false, 'Deployment: no service account token');

check(pod.containers.length === 1, 'Deployment: one container');
const c = pod.containers[0];
const psc = pod.securityContext || {};
const csc = c.securityContext || {};
const eff = (k) => (csc[k] !== undefined ? csc[k] : psc[k]);
check(eff('runAsNonRoot') === true, 'securityContext: runAsNonRoot');
check(Number.isInteger(eff('runAsUser')) && eff('runAsUser') > 0, 'securityContext: numeric non-root runAsUser');
check(Number.isInteger(eff('runAsGroup')) && eff('runAsGroup') > 0, 'securityContext: numeric non-root runAsGroup');
check(csc.readOnlyRootFilesystem === true, 'securityContext: readOnlyRootFilesystem');
check(csc.allowPrivilegeEscalation === false, 'securityContext: allowPrivilegeEscalation false');
check(JSON.stringify(((csc.capabilities || {}).drop) || []) === '["ALL"]' &&
  !((csc.capabilities || {}).add || []).length, 'securityContext: drops ALL capabilities, adds none');
check(((eff('seccompProfile') || {}).type) === 'RuntimeDefault', 'securityContext: seccomp RuntimeDefault');
check(!csc.privileged, 'securityContext: not privileged');
check(c.resources && c.resources.requests && c.resources.limits && c.resources.limits.memory,
  'container: resource requests and a memory limit');

const ports = {};
for (const p of c.ports || []) ports[p.name] = p;
const portNum = (ref) => (typeof ref === 'number' ? ref : (ports[ref] || {}).containerPort);
const lp = c.livenessProbe || {};
const rp = c.readinessProbe || {};
check((lp.httpGet || {}).path === '/health', 'livenessProbe: GET /health');
check((rp.httpGet || {}).path === '/ready', 'readinessProbe: GET /ready');

// The config volume: a ConfigMap mounted as a directory, never subPath.
const cfgVolumes = (pod.volumes || []).filter((v) => v.configMap && v.configMap.name === cm.metadata.name);
check(cfgVolumes.length === 1, 'Deployment: the ConfigMap is a volume');
const mounts = (c.volumeMounts || []).filter((m) => cfgVolumes.some((v) => v.name === m.name));
check(mounts.length === 1, 'container: mounts the config volume');
check(mounts.every((m) => m.subPath === undefined && m.subPathExpr === undefined),
  'container: no subPath on the config volume (updates must arrive)');
check(mounts.every((m) => m.readOnly === true), 'container: the config volume is read-only');

// The image runs `svcmapd -c /etc/svcmapd/svcmapd.ini`: the mount must hold it.
const cf = fs.readFileSync(containerfile, 'utf8');
const ep = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(cf);
const entry = ep ? JSON.parse(ep[1]) : [];
const cIdx = entry.indexOf('-c');
const cfgPath = c.args && c.args.includes('-c') ? c.args[c.args.indexOf('-c') + 1] : entry[cIdx + 1];
check(cIdx > 0 && typeof cfgPath === 'string', 'the image ENTRYPOINT names the mapping file with -c');
const item = (cfgVolumes[0].configMap.items || []).find((i) => i.key === 'svcmapd.ini');
const mountedFile = mounts[0] && path.posix.join(mounts[0].mountPath, item ? item.path : 'svcmapd.ini');
check(mountedFile === cfgPath, `the ConfigMap lands where the image reads it (${cfgPath})`, mountedFile);

// ---- the mapping file in the ConfigMap ----

const ini = (cm.data || {})['svcmapd.ini'];
check(typeof ini === 'string', 'ConfigMap: holds svcmapd.ini');
check(ini === fs.readFileSync(containerIni, 'utf8'),
  `ConfigMap: svcmapd.ini is ${path.basename(containerIni)} byte for byte`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'svcmapd-deploy-'));
try {
  const f = path.join(tmp, 'svcmapd.ini');
  fs.writeFileSync(f, ini);
  let out = '';
  let ok = true;
  try {
    out = execFileSync(svcmapd, ['-t', '-c', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    ok = false;
    out = `${e.stdout}${e.stderr}`;
  }
  check(ok, 'ConfigMap: svcmapd -t accepts svcmapd.ini', out.trim());
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

// A small reader of the settings sections (values up to ';' or '#').
const settings = {};
let section = null;
for (const raw of ini.split('\n')) {
  const line = raw.replace(/\s;.*$/, '').trim();
  const m = /^\[([a-z]+)\]$/.exec(line);
  if (m) section = m[1];
  else if (/^\[/.test(line)) section = null;
  else if (section && /^[a-z-]+\s*=/.test(line)) {
    const [k, ...v] = line.split('=');
    settings[`${section}.${k.trim()}`] = v.join('=').trim();
  }
}
const portOf = (v) => (v ? Number(/:(\d+)$/.exec(v)[1]) : undefined);
const listen = (settings['server.listen'] || '').split(/[,\s]+/).filter(Boolean);
check(listen.length > 0 && listen.every((a) => /^(0\.0\.0\.0|\[::\]):\d+$/.test(a)),
  'svcmapd.ini: listens on the wildcard (the Service reaches the pod IP)', listen.join(' '));
check(!listen.some((a) => a.startsWith('[')), 'svcmapd.ini: no IPv6 wildcard (a pod may have no IPv6)');
const dnsPort = portOf(listen[0]);
check(portOf(settings['http.health']) === portNum((lp.httpGet || {}).port),
  'livenessProbe port is [http] health');
check(portOf(settings['http.ready']) === portNum((rp.httpGet || {}).port),
  'readinessProbe port is [http] ready');
check(ports.metrics && portOf(settings['http.metrics']) === ports.metrics.containerPort,
  'container port "metrics" is [http] metrics');
check(Number((spec.template.metadata.annotations || {})['prometheus.io/port']) === portOf(settings['http.metrics']) &&
  (spec.template.metadata.annotations || {})['prometheus.io/scrape'] === 'true',
  'prometheus.io annotations point at [http] metrics');
check(Number(settings['http.lameduck']) > 0 &&
  Number(settings['http.lameduck']) < (pod.terminationGracePeriodSeconds ?? 30),
  'lameduck is on and shorter than terminationGracePeriodSeconds');
check(/^\d+[smh]?$/.test(settings['server.reload'] || ''), 'svcmapd.ini: reload is on (ConfigMap updates apply)');
check(!settings['server.user'], 'svcmapd.ini: no user = (the pod is already unprivileged)');
const dnsPorts = (c.ports || []).filter((p) => p.containerPort === dnsPort);
check(dnsPorts.some((p) => p.protocol === 'UDP') && dnsPorts.some((p) => (p.protocol || 'TCP') === 'TCP'),
  `container: DNS port ${dnsPort} (from listen) on UDP and TCP`);
check(dnsPort >= 1024 || (csc.capabilities.add || []).includes('NET_BIND_SERVICE'),
  'container: the DNS port needs no privilege');

// The state-dir and the control socket's directory: emptyDirs (the root is
// read-only), named alike by the file and by --state-dir in the args.
const emptyDirAt = (dir) => (c.volumeMounts || []).some((m) => m.mountPath === dir &&
  !m.readOnly && (pod.volumes || []).some((v) => v.name === m.name && v.emptyDir));
const stateDir = settings['server.state-dir'];
check(stateDir && emptyDirAt(stateDir), 'svcmapd.ini: state-dir is a writable emptyDir mount', stateDir);
const args = c.args || [];
check(args.includes('--state-dir') && args[args.indexOf('--state-dir') + 1] === stateDir,
  'container args: --state-dir is the state-dir of svcmapd.ini (known when the file is not)',
  JSON.stringify(args));
const sock = settings['control.socket'];
check(sock && emptyDirAt(path.posix.dirname(sock)),
  "svcmapd.ini: [control] socket's directory is a writable emptyDir mount", sock);
check(/^COPY --from=\S+ \S*\/svcmapctl \S+$/m.test(cf), 'the image ships svcmapctl');

// ---- Service and PDB ----

check(svc.spec.clusterIP && /^\d+\.\d+\.\d+\.\d+$/.test(svc.spec.clusterIP), 'Service: a fixed clusterIP');
check(Object.entries(svc.spec.selector || {}).length > 0 && matches(svc.spec.selector),
  'Service: selector matches the pods');
const sp = svc.spec.ports || [];
const target = (p) => portNum(p.targetPort === undefined ? p.port : p.targetPort);
for (const proto of ['UDP', 'TCP'])
  check(sp.some((p) => p.port === 53 && (p.protocol || 'TCP') === proto && target(p) === dnsPort),
    `Service: port 53/${proto} to the DNS port ${dnsPort}`);
check(sp.every((p) => target(p) !== undefined && (c.ports || []).some((q) =>
  q.containerPort === target(p) && (q.protocol || 'TCP') === (p.protocol || 'TCP'))),
  'Service: every targetPort is a container port of the same protocol');
check(sp.some((p) => target(p) === portOf(settings['http.metrics'])), 'Service: the metrics port');
check(pdb.spec.minAvailable === 1 && matches(pdb.spec.selector.matchLabels),
  'PodDisruptionBudget: minAvailable 1 of these pods');
check(pdb.spec.minAvailable < spec.replicas, 'PodDisruptionBudget: leaves room for a drain');

// ---- the image agrees ----

const user = /^USER\s+(\S+)\s*$/m.exec(cf);
check(user && user[1] === `${eff('runAsUser')}:${eff('runAsGroup')}`,
  'the image USER is the pod runAsUser:runAsGroup', user && user[1]);
const exposed = ((/^EXPOSE\s+(.*)$/m.exec(cf) || [])[1] || '').split(/\s+/);
for (const p of c.ports || [])
  check(exposed.includes(`${p.containerPort}/${(p.protocol || 'TCP').toLowerCase()}`) ||
    ((p.protocol || 'TCP') === 'TCP' && exposed.includes(String(p.containerPort))),
    `the image EXPOSEs ${p.containerPort}/${p.protocol || 'TCP'}`);

TAP.finish();
