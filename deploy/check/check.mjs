// Offline checks of deploy/ (run by check.sh after `npm ci` here):
//  1. `kubectl kustomize` renders every shape directory;
//  2. every rendered document, and every loose manifest file (such as the
//     optional gateway/hpa.yaml), validates against the Kubernetes API
//     schema (kubernetes-models; the Prometheus Operator's for its kinds);
//  3. every pod template passes the security rules of issue #19;
//  4. every tidepool container agrees with the tidepool.ini it mounts:
//     probes on /livez and /readyz at metrics_port on every address, the
//     auth_file inside the mounted Secret, the unix socket dir on an
//     emptyDir, a grace period longer than shutdown_delay + shutdown_timeout;
//  5. the shape-specific promises (native sidecar, node-local Service with a
//     surge-only rollout, a spread gateway with a PodDisruptionBudget, a
//     PodMonitor that selects every shape's pods).
// Prints one line per failure and "N passed, N failed" last; exit 1 on any.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), "..");
const SHAPES = ["sidecar", "daemonset", "gateway", "monitoring"];
const UID = 65532;
let passed = 0;
let failed = 0;

function check(ok, what) {
	if (ok) {
		passed++;
	} else {
		failed++;
		console.log("FAIL " + what);
	}
	return ok;
}

function parseDocs(text, where) {
	return parseAllDocuments(text)
		.map((d) => {
			if (d.errors.length) throw new Error(where + ": " + d.errors[0].message);
			return d.toJS();
		})
		.filter((d) => d);
}

async function modelFor(doc) {
	const api = doc.apiVersion || "";
	const path = api.startsWith("monitoring.coreos.com/")
		? "@kubernetes-models/prometheus-operator/" + api
		: "kubernetes-models/" + api;
	try {
		return (await import(path))[doc.kind];
	} catch {
		return undefined;
	}
}

async function validateSchema(doc, where) {
	// kustomize folds long base64 values over lines; the API server's
	// decoder (Go's base64) ignores the newlines, the schema's format does not
	if (doc.kind === "Secret" && doc.data)
		doc = { ...doc, data: Object.fromEntries(Object.entries(doc.data).map(([k, v]) => [k, v.replace(/\s+/g, "")])) };
	const Model = await modelFor(doc);
	if (!check(Model, `${where}: no schema for ${doc.apiVersion} ${doc.kind}`)) return;
	try {
		new Model(doc).validate();
		check(true);
	} catch (e) {
		check(false, `${where}: ${doc.kind}/${doc.metadata?.name}: ${e.message}`);
	}
}

// ------------------------------------------------------------ security

const WORKLOADS = new Set(["Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"]);

function podTemplates(docs) {
	return docs.filter((d) => WORKLOADS.has(d.kind)).map((d) => ({ owner: d, pod: d.spec.template }));
}

function checkSecurity(owner, pod, where) {
	const name = `${where}: ${owner.kind}/${owner.metadata.name}`;
	const ps = pod.spec.securityContext || {};
	check(ps.runAsNonRoot === true, `${name}: pod runAsNonRoot`);
	check(ps.runAsUser === UID, `${name}: pod runAsUser ${UID}`);
	check(ps.seccompProfile?.type === "RuntimeDefault", `${name}: pod seccompProfile RuntimeDefault`);
	check(!pod.spec.hostNetwork && !pod.spec.hostPID && !pod.spec.hostIPC, `${name}: no host namespaces`);
	check(!(pod.spec.volumes || []).some((v) => v.hostPath), `${name}: no hostPath volume`);
	for (const c of [...(pod.spec.initContainers || []), ...pod.spec.containers]) {
		const cn = `${name} container ${c.name}`;
		const sc = c.securityContext || {};
		check((sc.runAsNonRoot ?? ps.runAsNonRoot) === true, `${cn}: runAsNonRoot`);
		check((sc.runAsUser ?? ps.runAsUser) === UID, `${cn}: runAsUser ${UID}`);
		check(sc.readOnlyRootFilesystem === true, `${cn}: readOnlyRootFilesystem`);
		check(sc.allowPrivilegeEscalation === false, `${cn}: allowPrivilegeEscalation false`);
		check((sc.capabilities?.drop || []).includes("ALL"), `${cn}: capabilities drop ALL`);
		check(!(sc.capabilities?.add || []).length, `${cn}: no capabilities added`);
		check(!sc.privileged, `${cn}: not privileged`);
		check((sc.seccompProfile?.type ?? ps.seccompProfile?.type) === "RuntimeDefault",
			`${cn}: seccompProfile RuntimeDefault`);
		const r = c.resources || {};
		check(r.requests?.cpu && r.requests?.memory, `${cn}: cpu and memory requests`);
		check(r.limits?.cpu && r.limits?.memory, `${cn}: cpu and memory limits`);
	}
}

// ------------------------------------------------ tidepool vs its ini

function parseIni(text) {
	const out = {};
	let section = "";
	for (const raw of text.split("\n")) {
		const line = raw.trim();
		if (!line || line.startsWith(";") || line.startsWith("#")) continue;
		const m = line.match(/^\[(.+)\]$/);
		if (m) {
			section = m[1];
			out[section] = out[section] || {};
			continue;
		}
		const eq = line.indexOf("=");
		if (eq > 0) out[section][line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
	}
	return out;
}

function portNumber(c, port) {
	if (typeof port === "number") return port;
	return (c.ports || []).find((p) => p.name === port)?.containerPort;
}

function mountOf(pod, c, path) {
	const m = (c.volumeMounts || []).find((vm) => vm.mountPath === path);
	return m && (pod.spec.volumes || []).find((v) => v.name === m.name);
}

function checkTidepool(docs, owner, pod, c, where) {
	const cn = `${where}: ${owner.kind}/${owner.metadata.name} container ${c.name}`;
	const iniPath = (c.args || [])[0] || "/etc/tidepool/tidepool.ini";
	const dir = iniPath.slice(0, iniPath.lastIndexOf("/"));
	const vol = mountOf(pod, c, dir);
	const cm = vol?.configMap && docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === vol.configMap.name);
	const text = cm?.data?.[iniPath.slice(dir.length + 1)];
	if (!check(text, `${cn}: ${iniPath} comes from a ConfigMap in the same render`)) return;
	const ini = parseIni(text);
	const main = ini.tidepool || ini.pgbouncer || {};
	const metricsPort = Number(main.metrics_port ?? 9127);
	check(main.metrics_listen_addr === "*", `${cn}: metrics_listen_addr = * (the kubelet probes the pod IP)`);
	const probes = { livenessProbe: ["/livez"], readinessProbe: ["/readyz"], startupProbe: ["/livez", "/readyz"] };
	check(c.livenessProbe && c.readinessProbe, `${cn}: liveness and readiness probes`);
	for (const [kind, paths] of Object.entries(probes)) {
		const p = c[kind];
		if (!p) continue;
		check(p.httpGet && paths.includes(p.httpGet.path), `${cn}: ${kind} path is ${paths.join(" or ")}`);
		check(portNumber(c, p.httpGet?.port) === metricsPort, `${cn}: ${kind} port is metrics_port ${metricsPort}`);
	}
	const listenPort = Number(main.listen_port ?? 6432);
	if (main.listen_addr !== "127.0.0.1")
		check(portNumber(c, "postgres") === listenPort, `${cn}: containerPort "postgres" is listen_port ${listenPort}`);
	check(portNumber(c, "metrics") === metricsPort, `${cn}: containerPort "metrics" is metrics_port`);
	if (main.auth_file) {
		const adir = main.auth_file.slice(0, main.auth_file.lastIndexOf("/"));
		const sv = mountOf(pod, c, adir);
		const secret = sv?.secret && docs.find((d) => d.kind === "Secret" && d.metadata.name === sv.secret.secretName);
		const key = main.auth_file.slice(adir.length + 1);
		check(secret && (secret.data?.[key] || secret.stringData?.[key]),
			`${cn}: auth_file ${main.auth_file} is key ${key} of a Secret mounted at ${adir}`);
	}
	if (main.unix_socket_dir)
		check(mountOf(pod, c, main.unix_socket_dir)?.emptyDir, `${cn}: unix_socket_dir on an emptyDir`);
	const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
	const needed = Number(main.shutdown_delay ?? 0) + Number(main.shutdown_timeout ?? 30);
	check(grace > needed, `${cn}: terminationGracePeriodSeconds ${grace} > shutdown_delay + shutdown_timeout = ${needed}`);
	return main;
}

function selects(selector, labels) {
	return Object.entries(selector || {}).every(([k, v]) => labels?.[k] === v);
}

function checkShape(shape, docs) {
	const tps = podTemplates(docs);
	for (const { owner, pod } of tps) {
		checkSecurity(owner, pod, shape);
		const init = pod.spec.initContainers || [];
		for (const c of [...init, ...pod.spec.containers]) {
			if (!/(^|\/)tidepool(:|$)/.test(c.image)) continue;
			checkTidepool(docs, owner, pod, c, shape);
			if (shape === "sidecar")
				check(init.includes(c) && c.restartPolicy === "Always", `${shape}: tidepool is a native sidecar`);
		}
	}
	for (const svc of docs.filter((d) => d.kind === "Service"))
		check(tps.some(({ pod }) => selects(svc.spec.selector, pod.metadata.labels)),
			`${shape}: Service ${svc.metadata.name} selects a pod template`);
	if (shape === "daemonset") {
		const ds = docs.find((d) => d.kind === "DaemonSet");
		const ru = ds?.spec.updateStrategy?.rollingUpdate || {};
		check(ru.maxUnavailable === 0 && ru.maxSurge >= 1, `${shape}: rolling update surges, never unavailable`);
		check(docs.some((d) => d.kind === "Service" && d.spec.internalTrafficPolicy === "Local"),
			`${shape}: a Service with internalTrafficPolicy Local`);
	}
	if (shape === "gateway") {
		const dep = docs.find((d) => d.kind === "Deployment");
		check(dep?.spec.replicas >= 2, `${shape}: 2+ replicas`);
		check((dep?.spec.template.spec.topologySpreadConstraints || [])
			.some((t) => t.topologyKey === "kubernetes.io/hostname"), `${shape}: spread over nodes`);
		check(docs.some((d) => d.kind === "PodDisruptionBudget" &&
			selects(d.spec.selector.matchLabels, dep?.spec.template.metadata.labels)), `${shape}: a PDB selects it`);
	}
}

function podMonitorSelects(pm, labels) {
	const sel = pm.spec.selector || {};
	return selects(sel.matchLabels, labels) && (sel.matchExpressions || []).every((e) =>
		e.operator === "In" ? e.values.includes(labels?.[e.key]) : e.operator === "Exists" ? e.key in (labels || {}) : false);
}

// ----------------------------------------------------------------- main

const rendered = {};
for (const shape of SHAPES) {
	let text;
	try {
		text = execFileSync("kubectl", ["kustomize", join(DEPLOY, shape)], { encoding: "utf8" });
	} catch (e) {
		check(false, `kubectl kustomize deploy/${shape}: ${e.message}`);
		continue;
	}
	check(true);
	rendered[shape] = parseDocs(text, shape);
	for (const doc of rendered[shape]) await validateSchema(doc, `deploy/${shape} (rendered)`);
	for (const f of readdirSync(join(DEPLOY, shape)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml"))
		for (const doc of parseDocs(readFileSync(join(DEPLOY, shape, f), "utf8"), f))
			await validateSchema(doc, `deploy/${shape}/${f}`);
	checkShape(shape, rendered[shape]);
}
const pm = (rendered.monitoring || []).find((d) => d.kind === "PodMonitor");
if (check(pm, "monitoring: a PodMonitor")) {
	for (const shape of ["sidecar", "daemonset", "gateway"])
		for (const { owner, pod } of podTemplates(rendered[shape] || []))
			if (pod.spec.containers.concat(pod.spec.initContainers || []).some((c) => /tidepool/.test(c.image)))
				check(podMonitorSelects(pm, pod.metadata.labels) &&
					pm.spec.podMetricsEndpoints.every((e) => pod.spec.containers.concat(pod.spec.initContainers || [])
						.some((c) => portNumber(c, e.port))), `monitoring: the PodMonitor scrapes ${shape} ${owner.metadata.name}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
