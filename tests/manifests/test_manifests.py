#!/usr/bin/env python3
"""Tests of manifests/, the Dockerfile and their agreement with the code.

Run one group:   test_manifests.py <Group>      (ctest registers one test per group)
Run everything:  test_manifests.py

Environment (set by ctest, see CMakeLists.txt beside this file):
  HYPERACCEL_SOURCE_DIR  checkout root (default: two levels above this file)
  HYPERACCEL_SHARED_DIR  shared/ folder (Volcano CRD schemas, fixtures)
  HYPERACCEL_BIN_DIR     where the three binaries were built
  KUBECTL                kubectl to render the kustomizations (default: kubectl on PATH)

Exit code 77 (ctest SKIP_RETURN_CODE) when every test of the selected group was skipped, e.g.
because kubectl or the shared folder is missing; the reason is printed.
"""

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import yaml

try:
    import jsonschema
except ImportError:  # reported by the CRD tests
    jsonschema = None

SOURCE = os.environ.get("HYPERACCEL_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFESTS = os.path.join(SOURCE, "manifests")
SHARED = os.environ.get("HYPERACCEL_SHARED_DIR") or os.path.join(SOURCE, "..", "shared")
BIN_DIR = os.environ.get("HYPERACCEL_BIN_DIR") or os.path.join(SOURCE, "build", "bin")
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")

OVERLAYS = ["labels", "direct", "emulated"]
KUSTOMIZATIONS = {f"overlays/{o}": os.path.join(MANIFESTS, "overlays", o) for o in OVERLAYS}
KUSTOMIZATIONS["examples"] = os.path.join(MANIFESTS, "examples")
# The DRA overlay replaces the device plugin; the Dra group checks it, not the loops over OVERLAYS.
KUSTOMIZATIONS["overlays/dra"] = os.path.join(MANIFESTS, "overlays", "dra")
KUSTOMIZATIONS["examples/dra"] = os.path.join(MANIFESTS, "examples", "dra")
DRA_DRIVER = "fpga.hyperaccel.ai"
NAMESPACE = "hyperaccel-system"
VOLCANO_NAMESPACE = "volcano-system"
BINARIES = ["hyperaccel-device-plugin", "hyperaccel-topology-agent", "hyperaccel-volcano-bridge"]
# In the image too, deployed by overlays/dra only (checked by the Dra group).
DRA_BINARIES = ["hyperaccel-dra-driver"]
# In the image too, for operators (`kubectl exec ... -- kubectl-hyperaccel topo`); not deployed by itself.
TOOLS = ["kubectl-hyperaccel"]
RESOURCE = "hyperaccel.ai/fpga"

# names.h is the source of the names users see; read them from there, not from memory.
NAMES_H = os.path.join(SOURCE, "placement", "include", "hyperaccel", "placement", "names.h")


def names_h():
    text = open(NAMES_H, encoding="utf-8").read()
    return dict(re.findall(r'constexpr const char\*\s+(k\w+)\s*=\s*"([^"]*)"', text))


# ---------------------------------------------------------------------------------------------
# Rendering and object helpers

_render_cache = {}


_kustomize_version = []


def need_kubectl(test):
    if not KUBECTL:
        test.skipTest("kubectl not found: cannot render the kustomizations")
    if not _kustomize_version:
        proc = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True, timeout=60)
        m = re.search(r"Kustomize Version:\s*v?(\d+)", proc.stdout)
        _kustomize_version.append(int(m.group(1)) if m else 0)
    if _kustomize_version[0] < 4:
        test.skipTest(f"{KUBECTL} embeds kustomize < v4 (no `labels`, per-generator options): "
                      "use kubectl >= 1.27 to render the kustomizations")


def render(key):
    """Objects `kubectl kustomize` renders for a kustomization (cached)."""
    if key not in _render_cache:
        proc = subprocess.run([KUBECTL, "kustomize", KUSTOMIZATIONS[key]], capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"kubectl kustomize {key} failed:\n{proc.stderr}")
        _render_cache[key] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return copy.deepcopy(_render_cache[key])


def find(objs, kind, name=None):
    out = [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
    return out


def one(test, objs, kind, name):
    found = find(objs, kind, name)
    test.assertEqual(len(found), 1, f"expected exactly one {kind} {name}, found {len(found)}")
    return found[0]


def containers_of(obj):
    spec = obj["spec"]
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
        spec = spec["template"]["spec"]
    elif obj["kind"] == "Job" and obj["apiVersion"].startswith("batch.volcano.sh"):
        return [c for t in spec["tasks"] for c in t["template"]["spec"]["containers"]]
    return spec.get("containers", [])


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def container(test, obj, name):
    for c in containers_of(obj):
        if c["name"] == name:
            return c
    test.fail(f"{obj['kind']} {obj['metadata']['name']} has no container {name}")


def flag_value(args, flag):
    """Value of `--flag=value` / `--flag value` in an argument list (None when absent)."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args) and not args[i + 1].startswith("--"):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def scheduler_conf(objs):
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "volcano-scheduler-configmap"]
    return yaml.safe_load(cms[0]["data"]["volcano-scheduler.conf"]) if cms else None


def controller_conf(objs):
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "volcano-controller-configmap"]
    return yaml.safe_load(cms[0]["data"]["volcano-controller.conf"]) if cms else None


def our_containers(objs):
    """(object, container) for every container running one of our binaries."""
    out = []
    for o in objs:
        if o["kind"] not in ("Deployment", "DaemonSet"):
            continue
        for c in containers_of(o):
            cmd = c.get("command") or []
            if cmd and os.path.basename(cmd[0]) in BINARIES:
                out.append((o, c))
    return out


# ---------------------------------------------------------------------------------------------

class Parse(unittest.TestCase):
    """Every file under manifests/ parses, and every Kubernetes document has its identity."""

    def yaml_files(self):
        for root, _, files in os.walk(MANIFESTS):
            for f in sorted(files):
                if f.endswith((".yaml", ".yml", ".conf")):
                    yield os.path.join(root, f)

    def test_every_file_parses(self):
        files = list(self.yaml_files())
        self.assertGreater(len(files), 15, "manifests/ looks empty")
        for path in files:
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                with open(path, encoding="utf-8") as f:
                    docs = [d for d in yaml.safe_load_all(f) if d is not None]
                self.assertTrue(docs, "no YAML document")
                for d in docs:
                    self.assertIsInstance(d, dict)

    def test_kubernetes_documents_have_identity(self):
        special = {"kustomization.yaml", "cabling.yaml"}
        for path in self.yaml_files():
            if os.path.basename(path) in special or path.endswith(".conf"):
                continue
            with open(path, encoding="utf-8") as f:
                for d in yaml.safe_load_all(f):
                    if d is None:
                        continue
                    with self.subTest(path=os.path.relpath(path, SOURCE), kind=d.get("kind")):
                        self.assertIn("apiVersion", d)
                        self.assertIn("kind", d)
                        self.assertTrue(d.get("metadata", {}).get("name"), "metadata.name missing")

    def test_every_kustomization_lists_existing_files(self):
        for root, _, files in os.walk(MANIFESTS):
            if "kustomization.yaml" not in files:
                continue
            k = yaml.safe_load(open(os.path.join(root, "kustomization.yaml"), encoding="utf-8"))
            refs = list(k.get("resources", []))
            for g in k.get("configMapGenerator", []):
                refs += [f.split("=", 1)[-1] for f in g.get("files", [])]
            for r in refs:
                with self.subTest(kustomization=os.path.relpath(root, SOURCE), ref=r):
                    self.assertTrue(os.path.exists(os.path.join(root, r)), f"{r} does not exist")

    def test_no_machine_paths(self):
        for root, _, files in os.walk(MANIFESTS):
            for f in files:
                text = open(os.path.join(root, f), encoding="utf-8").read()
                self.assertNotRegex(text, r"/work/|/home/|/root/", f"machine path in {f}")


class Kustomize(unittest.TestCase):
    """`kubectl kustomize` renders every overlay, and each overlay renders what its mode needs."""

    def setUp(self):
        need_kubectl(self)

    def test_every_kustomization_renders(self):
        for key in KUSTOMIZATIONS:
            with self.subTest(kustomization=key):
                objs = render(key)
                self.assertTrue(objs)
                ids = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs]
                self.assertEqual(len(ids), len(set(ids)), f"duplicate objects in {key}")

    def test_overlays_render_the_whole_stack(self):
        for o in OVERLAYS:
            with self.subTest(overlay=o):
                objs = render(f"overlays/{o}")
                one(self, objs, "Namespace", NAMESPACE)
                one(self, objs, "DaemonSet", "hyperaccel-node")
                one(self, objs, "Deployment", "hyperaccel-volcano-bridge")
                one(self, objs, "Service", "hyperaccel-volcano-bridge")
                one(self, objs, "ServiceAccount", "hyperaccel-node")
                one(self, objs, "ServiceAccount", "hyperaccel-volcano-bridge")
                one(self, objs, "NetworkPolicy", "hyperaccel-volcano-bridge")
                one(self, objs, "NetworkPolicy", "hyperaccel-node")
                self.assertIsNotNone(scheduler_conf(objs))
                self.assertIsNotNone(controller_conf(objs))
                for obj in objs:
                    ns = obj["metadata"].get("namespace")
                    if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
                        self.assertIsNone(ns, f"{obj['kind']} is cluster-scoped")
                    elif obj["metadata"]["name"].startswith("volcano-"):
                        self.assertEqual(ns, VOLCANO_NAMESPACE, obj["metadata"]["name"])
                    else:
                        self.assertEqual(ns, NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}")

    def test_references_resolve(self):
        for o in OVERLAYS:
            objs = render(f"overlays/{o}")
            cms = {c["metadata"]["name"]: c for c in find(objs, "ConfigMap")}
            sas = {s["metadata"]["name"] for s in find(objs, "ServiceAccount")}
            for w in find(objs, "DaemonSet") + find(objs, "Deployment"):
                spec = pod_spec(w)
                with self.subTest(overlay=o, workload=w["metadata"]["name"]):
                    self.assertIn(spec["serviceAccountName"], sas)
                    for v in spec.get("volumes", []):
                        if "configMap" in v:
                            self.assertIn(v["configMap"]["name"], cms, "ConfigMap volume points nowhere")
                    vols = {v["name"] for v in spec.get("volumes", [])}
                    for c in spec["containers"]:
                        for m in c.get("volumeMounts", []):
                            self.assertIn(m["name"], vols)

    def agent_args(self, overlay):
        ds = one(self, render(f"overlays/{overlay}"), "DaemonSet", "hyperaccel-node")
        return container(self, ds, "topology-agent")["args"]

    def test_labels_mode(self):
        args = self.agent_args("labels")
        self.assertEqual(args[0], "run")
        self.assertEqual([a for a in args if a.startswith("--hypernodes")], ["--hypernodes=labels"])
        conf = controller_conf(render("overlays/labels"))
        label_sources = [s for s in conf["networkTopologyDiscovery"] if s["source"] == "label"]
        self.assertEqual(len(label_sources), 1)
        self.assertTrue(label_sources[0]["enabled"])

    def test_direct_mode(self):
        args = self.agent_args("direct")
        self.assertEqual([a for a in args if a.startswith("--hypernodes")], ["--hypernodes=direct"])
        # Never two writers: Volcano's label discovery is off for these nodes.
        conf = controller_conf(render("overlays/direct"))
        for s in conf.get("networkTopologyDiscovery") or []:
            if s.get("source") == "label":
                self.assertFalse(s.get("enabled", False), "label discovery on in direct mode")

    def test_emulated_mode(self):
        objs = render("overlays/emulated")
        ds = one(self, objs, "DaemonSet", "hyperaccel-node")
        for name in ("device-plugin", "topology-agent"):
            args = container(self, ds, name)["args"]
            self.assertEqual(flag_value(args, "--emulate"), "8", name)
            self.assertIsNone(flag_value(args, "--mount-xrt"), "no host XRT in an emulated cluster")
            self.assertNotIn("--mount-xrt", args)
        terms = pod_spec(ds)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        keys = {e["key"] for t in terms for e in t["matchExpressions"]}
        self.assertEqual(keys, {"emulation.hyperaccel.ai/enabled"})
        # Outside the prefix the agent owns (it removes hyperaccel.ai/ labels it does not write).
        self.assertFalse(any(k.startswith(names_h()["kPrefix"]) for k in keys))

    def test_examples_are_separate(self):
        objs = render("examples")
        kinds = {o["kind"] for o in objs}
        self.assertLessEqual({"Queue", "PriorityClass", "Deployment", "Job", "Pod"}, kinds)
        self.assertNotIn("DaemonSet", kinds)


class Structure(unittest.TestCase):
    """Required fields of the DaemonSet, the bridge and the Volcano configuration."""

    def setUp(self):
        need_kubectl(self)
        self.objs = render("overlays/labels")
        self.ds = one(self, self.objs, "DaemonSet", "hyperaccel-node")
        self.spec = pod_spec(self.ds)

    def host_paths(self):
        return {v["name"]: v["hostPath"]["path"] for v in self.spec["volumes"] if "hostPath" in v}

    def mounts(self, cname):
        return {m["mountPath"]: m for m in container(self, self.ds, cname).get("volumeMounts", [])}

    def test_daemonset_host_paths(self):
        paths = set(self.host_paths().values())
        for p in ["/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources", "/sys", "/dev", "/var/run/cdi"]:
            self.assertIn(p, paths)
        dp = self.mounts("device-plugin")
        self.assertTrue(dp["/sys"].get("readOnly"), "/sys must be read-only")
        self.assertTrue(dp["/dev"].get("readOnly"), "/dev is only looked at")
        self.assertFalse(dp["/var/lib/kubelet/device-plugins"].get("readOnly"), "the plugin creates its socket")
        ag = self.mounts("topology-agent")
        self.assertTrue(ag["/sys"].get("readOnly"))
        self.assertIn("/var/lib/kubelet/pod-resources", ag)
        # The agent's socket flag points into the mounted directory.
        sock = flag_value(container(self, self.ds, "topology-agent")["args"], "--pod-resources-socket")
        self.assertEqual(os.path.dirname(sock), "/var/lib/kubelet/pod-resources")
        # The plugin's kubelet dir is the mounted one.
        kdir = flag_value(container(self, self.ds, "device-plugin")["args"], "--kubelet-dir")
        self.assertIn(kdir, dp)

    def test_daemonset_placement(self):
        self.assertEqual(self.spec["priorityClassName"], "system-node-critical")
        self.assertTrue(self.spec.get("tolerations"))
        terms = self.spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        keys = {e["key"] for t in terms for e in t["matchExpressions"]}
        self.assertIn(names_h()["kLabelPresent"], keys)
        self.assertTrue(any(k.startswith("feature.node.kubernetes.io/pci-") and "10ee" in k for k in keys))
        # Terms are ORed: each label works on its own.
        self.assertEqual(len(terms), 2)

    def test_every_container_is_tight(self):
        for o in OVERLAYS:
            objs = render(f"overlays/{o}")
            for w, c in our_containers(objs):
                with self.subTest(overlay=o, container=c["name"]):
                    sc = c["securityContext"]
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                    self.assertNotIn("add", sc["capabilities"])
                    self.assertIs(sc["readOnlyRootFilesystem"], True)
                    self.assertIs(sc["allowPrivilegeEscalation"], False)
                    self.assertFalse(sc.get("privileged", False))
                    res = c["resources"]
                    for k in ("cpu", "memory"):
                        self.assertIn(k, res["requests"])
                        self.assertIn(k, res["limits"])
                    for probe in ("livenessProbe", "readinessProbe"):
                        self.assertIn(probe, c)
                    self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
                    if w["kind"] == "DaemonSet":
                        # A standby plugin instance is alive but not ready (docs/node-security.md).
                        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")

    def test_root_is_explained(self):
        # uid 0 only in the node DaemonSet, and each such line has a comment above it.
        for w, c in our_containers(self.objs):
            uid = c["securityContext"].get("runAsUser", pod_spec(w).get("securityContext", {}).get("runAsUser"))
            if w["kind"] == "Deployment":
                self.assertNotEqual(uid, 0)
                self.assertTrue(pod_spec(w)["securityContext"]["runAsNonRoot"])
        lines = open(os.path.join(MANIFESTS, "base", "daemonset.yaml"), encoding="utf-8").read().splitlines()
        root_lines = [i for i, l in enumerate(lines) if re.match(r"\s*runAsUser:\s*0\s*$", l)]
        self.assertEqual(len(root_lines), 2)
        for i in root_lines:
            self.assertTrue(any(l.strip().startswith("#") for l in lines[max(0, i - 8):i]),
                            f"daemonset.yaml:{i + 1}: runAsUser 0 without a comment saying why")

    def test_agent_gets_node_name_and_cabling(self):
        agent = container(self, self.ds, "topology-agent")
        env = {e["name"]: e for e in agent["env"]}
        self.assertEqual(env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName")
        self.assertEqual(env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace")
        cabling = flag_value(agent["args"], "--cabling")
        mount = self.mounts("topology-agent")[os.path.dirname(cabling)]
        vol = [v for v in self.spec["volumes"] if v["name"] == mount["name"]][0]
        cm = one(self, self.objs, "ConfigMap", vol["configMap"]["name"])
        self.assertIn(os.path.basename(cabling), cm["data"])
        doc = yaml.safe_load(cm["data"][os.path.basename(cabling)])
        self.assertEqual(doc["version"], 1)
        self.assertTrue(doc["links"])
        # Both containers read the same cabling file.
        self.assertEqual(flag_value(container(self, self.ds, "device-plugin")["args"], "--cabling"), cabling)

    def test_bridge_has_no_api_access(self):
        dep = one(self, self.objs, "Deployment", "hyperaccel-volcano-bridge")
        self.assertIs(pod_spec(dep)["automountServiceAccountToken"], False)
        sa = one(self, self.objs, "ServiceAccount", pod_spec(dep)["serviceAccountName"])
        self.assertIs(sa["automountServiceAccountToken"], False)
        for b in find(self.objs, "RoleBinding") + find(self.objs, "ClusterRoleBinding"):
            for s in b.get("subjects", []):
                self.assertNotEqual(s.get("name"), sa["metadata"]["name"], f"{b['metadata']['name']} binds the bridge")

    def test_service_reaches_bridge(self):
        dep = one(self, self.objs, "Deployment", "hyperaccel-volcano-bridge")
        svc = one(self, self.objs, "Service", "hyperaccel-volcano-bridge")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(labels.get(k), v)
        c = container(self, dep, "volcano-bridge")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        target = svc["spec"]["ports"][0]["targetPort"]
        self.assertEqual(ports.get(target, target), int(flag_value(c["args"], "--listen").rsplit(":", 1)[1]))
        # The scheduler's calls of one cycle must all reach one replica.
        if dep["spec"].get("replicas", 1) > 1:
            self.assertEqual(svc["spec"].get("sessionAffinity"), "ClientIP")

    def policy_ports(self, policy, workload):
        """The container ports a NetworkPolicy's ingress rules open, by number."""
        named = {p["name"]: p["containerPort"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
        out = set()
        for rule in policy["spec"]["ingress"]:
            self.assertTrue(rule.get("ports"), "a rule without ports opens every port")
            for p in rule["ports"]:
                self.assertEqual(p.get("protocol", "TCP"), "TCP")
                self.assertIn(p["port"], named if isinstance(p["port"], str) else named.values())
                out.add(named.get(p["port"], p["port"]))
        return out

    def policy_peers(self, policy):
        peers = []
        for rule in policy["spec"]["ingress"]:
            self.assertTrue(rule.get("from"), "a rule without `from` admits every client")
            for peer in rule["from"]:
                self.assertNotIn("ipBlock", peer, "peers by label, not address")
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                self.assertTrue(ns, f"peer {peer} not limited to one namespace")
                peers.append((ns, peer.get("podSelector", {}).get("matchLabels")))
        return peers

    def test_network_policies(self):
        policies = {p["metadata"]["name"]: p for p in find(self.objs, "NetworkPolicy")}
        # The bridge: its one listening port, from the Volcano scheduler (and Prometheus) only.
        dep = one(self, self.objs, "Deployment", "hyperaccel-volcano-bridge")
        bridge = policies.get("hyperaccel-volcano-bridge")
        self.assertIsNotNone(bridge, "no NetworkPolicy for the bridge")
        self.assertEqual(bridge["spec"]["policyTypes"], ["Ingress"])
        selector = bridge["spec"]["podSelector"]["matchLabels"]
        self.assertTrue(selector)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(all(labels.get(k) == v for k, v in selector.items()), "the policy misses the bridge pods")
        listen = int(flag_value(container(self, dep, "volcano-bridge")["args"], "--listen").rsplit(":", 1)[1])
        self.assertEqual(self.policy_ports(bridge, dep), {listen})
        peers = self.policy_peers(bridge)
        self.assertIn((VOLCANO_NAMESPACE, {"app": "volcano-scheduler"}), peers)
        # The scheduler peer is the namespace whose scheduler reads our extender configuration.
        self.assertIsNotNone(scheduler_conf(self.objs))
        for ns, pods in peers:
            if ns == VOLCANO_NAMESPACE:
                self.assertEqual(pods, {"app": "volcano-scheduler"}, "all of volcano-system may call the bridge")
            else:
                self.assertEqual((ns, pods), ("monitoring", None), "an unexpected client of the bridge")
        # The node pods: every port they listen on, from the monitoring namespace only.
        node = policies.get("hyperaccel-node")
        self.assertIsNotNone(node, "no NetworkPolicy for the node DaemonSet")
        self.assertEqual(node["spec"]["policyTypes"], ["Ingress"])
        ds_labels = self.ds["spec"]["template"]["metadata"]["labels"]
        node_selector = node["spec"]["podSelector"]["matchLabels"]
        self.assertTrue(node_selector)
        self.assertTrue(all(ds_labels.get(k) == v for k, v in node_selector.items()))
        all_ports = {p["containerPort"] for c in self.spec["containers"] for p in c.get("ports", [])}
        self.assertEqual(self.policy_ports(node, self.ds), all_ports)
        self.assertEqual(self.policy_peers(node), [("monitoring", None)])
        # Nothing else in our namespace is isolated by accident (an empty podSelector would).
        for p in policies.values():
            self.assertTrue(p["spec"]["podSelector"].get("matchLabels"), p["metadata"]["name"])

    def test_scheduler_config(self):
        conf = scheduler_conf(self.objs)
        actions = [a.strip() for a in conf["actions"].split(",")]
        for a in ("enqueue", "allocate", "preempt", "reclaim"):
            self.assertIn(a, actions)
        tiers = [[p["name"] for p in t["plugins"]] for t in conf["tiers"]]
        ext_tier = [i for i, t in enumerate(tiers) if "extender" in t]
        self.assertEqual(len(ext_tier), 1, "exactly one extender (Volcano supports one)")
        # Its preemptable/reclaimable vote only counts in the tier of gang/priority/conformance.
        self.assertIn("gang", tiers[ext_tier[0]])
        self.assertIn("priority", tiers[ext_tier[0]])
        plugins = {p["name"]: p for t in conf["tiers"] for p in t["plugins"]}
        args = plugins["extender"]["arguments"]
        self.assertEqual(args["extender.managedResources"], [RESOURCE], "must be a YAML list")
        self.assertIsInstance(args["extender.ignorable"], bool)
        self.assertRegex(args["extender.httpTimeout"], r"^\d+(ms|s)$")
        for verb in ("onSessionOpen", "predicate", "prioritize", "allocateFunc", "deallocateFunc", "preemptable",
                     "reclaimable"):
            self.assertIn(f"extender.{verb}Verb", args)
        # urlPrefix names the rendered Service.
        svc = one(self, self.objs, "Service", "hyperaccel-volcano-bridge")
        m = re.match(r"^http://([^/:]+):(\d+)(/.*)?$", args["extender.urlPrefix"])
        self.assertIsNotNone(m, args["extender.urlPrefix"])
        self.assertEqual(m.group(1), f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc")
        self.assertEqual(int(m.group(2)), svc["spec"]["ports"][0]["port"])
        # Card binpacking, node level and HyperNode level.
        nta = plugins["network-topology-aware"]["arguments"]
        self.assertIn(RESOURCE, [r.strip() for r in nta["hypernode.binpack.resources"].split(",")])
        self.assertIn(f"hypernode.binpack.resources.{RESOURCE}", nta)
        self.assertIn(RESOURCE, [r.strip() for r in plugins["binpack"]["arguments"]["binpack.resources"].split(",")])
        self.assertIn("predicates", plugins)
        self.assertIn("proportion", plugins)

    def test_controller_config_tiers(self):
        n = names_h()
        conf = controller_conf(self.objs)
        src = [s for s in conf["networkTopologyDiscovery"] if s["source"] == "label"][0]
        types = src["config"]["networkTopologyTypes"]
        self.assertEqual(len(types), 1)
        labels = [e["nodeLabel"] for e in list(types.values())[0]]
        # Top tier first; the last entry is the per-node label.
        self.assertEqual(labels, [n["kLabelIdc"], n["kLabelRack"], n["kLabelLinkDomain"], "kubernetes.io/hostname"])
        self.assertLessEqual(len(list(types)[0]), 20, "type name longer than 20 characters")

    def test_examples(self):
        n = names_h()
        objs = render("examples")
        queues = {q["metadata"]["name"]: q for q in find(objs, "Queue")}
        pcs = {p["metadata"]["name"]: p for p in find(objs, "PriorityClass")}
        prov = {q["metadata"]["labels"]["hyperaccel.ai/provisioning"] for q in queues.values()}
        self.assertEqual(prov, {"reserved", "spot"})
        for q in queues.values():
            reserved = q["metadata"]["labels"]["hyperaccel.ai/provisioning"] == "reserved"
            if reserved:
                self.assertGreater(int(q["spec"]["guarantee"]["resource"][RESOURCE]), 0)
            else:
                self.assertNotIn("guarantee", q["spec"])
                self.assertTrue(q["spec"]["reclaimable"])
        cats = {p["metadata"]["labels"]["hyperaccel.ai/category"]: p["value"] for p in pcs.values()
                if p["metadata"]["labels"]["hyperaccel.ai/provisioning"] == "reserved"}
        self.assertEqual(set(cats), {"serving", "training", "interactive"})
        self.assertGreater(cats["serving"], cats["interactive"])
        self.assertGreater(cats["serving"], cats["training"])
        spot = [p for p in pcs.values() if p["metadata"]["labels"]["hyperaccel.ai/provisioning"] == "spot"]
        self.assertEqual(len(spot), 1)
        self.assertEqual(spot[0]["preemptionPolicy"], "Never")
        self.assertLess(spot[0]["value"], min(cats.values()))

        def pod_meta_spec(w):
            if w["kind"] == "Pod":
                return w["metadata"], w["spec"]
            return w["spec"]["template"]["metadata"], w["spec"]["template"]["spec"]

        # Every workload: Volcano, an existing queue and priority class, cards requested = limited.
        workloads = find(objs, "Deployment") + find(objs, "Pod")
        for w in workloads:
            meta, spec = pod_meta_spec(w)
            with self.subTest(workload=w["metadata"]["name"]):
                self.assertEqual(spec["schedulerName"], "volcano")
                self.assertIn(meta["annotations"]["scheduling.volcano.sh/queue-name"], queues)
                self.assertIn(spec["priorityClassName"], pcs)
        job = one(self, objs, "Job", "llm-finetune")
        self.assertEqual(job["spec"]["schedulerName"], "volcano")
        self.assertIn(job["spec"]["queue"], queues)
        self.assertIn(job["spec"]["priorityClassName"], pcs)
        self.assertEqual(job["spec"]["networkTopology"], {"mode": "hard", "highestTierAllowed": 1})
        self.assertEqual(sum(t["replicas"] for t in job["spec"]["tasks"]), 4)
        self.assertEqual(job["spec"]["minAvailable"], 4)
        self.assertEqual(job["metadata"]["annotations"][n["kAnnotationRequireLinked"]], "true")
        for t in job["spec"]["tasks"]:
            self.assertEqual(t["template"]["metadata"]["annotations"][n["kAnnotationRequireLinked"]], "true")
        cards = {}
        for w in workloads + [job]:
            for c in containers_of(w):
                r = c["resources"]
                self.assertEqual(r["requests"][RESOURCE], r["limits"][RESOURCE], "extended resources: requests = limits")
                cards[w["metadata"]["name"]] = r["limits"][RESOURCE]
        self.assertEqual(cards["llm-inference"], 4)
        self.assertEqual(cards["llm-finetune"], 4)
        dev = one(self, objs, "Pod", "dev-sandbox")
        self.assertEqual(queues[dev["metadata"]["annotations"]["scheduling.volcano.sh/queue-name"]]["metadata"]["labels"][
            "hyperaccel.ai/provisioning"], "spot")
        self.assertEqual(dev["metadata"]["annotations"]["volcano.sh/preemptable"], "true")
        serving = one(self, objs, "Deployment", "llm-inference")
        self.assertEqual(serving["spec"]["template"]["metadata"]["annotations"]["volcano.sh/preemptable"], "false")


# ---------------------------------------------------------------------------------------------
# Volcano CRD schemas

def load_crds():
    d = os.path.join(SHARED, "reference", "volcano-crds")
    if not os.path.isdir(d):
        return None
    crds = {}
    for f in sorted(os.listdir(d)):
        if not f.endswith(".yaml"):
            continue
        crd = yaml.safe_load(open(os.path.join(d, f), encoding="utf-8"))
        group = crd["spec"]["group"]
        for v in crd["spec"]["versions"]:
            crds[(f"{group}/{v['name']}", crd["spec"]["names"]["kind"])] = v["schema"]["openAPIV3Schema"]
    return crds


def unknown_fields(obj, schema, path="$"):
    """Fields the API server would prune (structural schema without preserve-unknown-fields)."""
    out = []
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return out
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if props is not None and k in props:
                out += unknown_fields(v, props[k], f"{path}.{k}")
            elif isinstance(addl, dict):
                out += unknown_fields(v, addl, f"{path}.{k}")
            elif props is not None and addl is None and not (path == "$" and k in ("apiVersion", "kind", "metadata")):
                out.append(f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += unknown_fields(v, schema["items"], f"{path}[{i}]")
    return out


def schema_errors(obj, schema):
    validator = jsonschema.Draft7Validator(schema)
    errs = [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    return errs + [f"{p}: unknown field (would be pruned)" for p in unknown_fields(obj, schema)]


class Crds(unittest.TestCase):
    """Volcano objects validate against Volcano's CRD schemas (shared/reference/volcano-crds)."""

    @classmethod
    def setUpClass(cls):
        cls.crds = load_crds()

    def setUp(self):
        if self.crds is None:
            self.skipTest(f"Volcano CRD schemas not found in {SHARED}/reference/volcano-crds "
                          "(set HYPERACCEL_SHARED_DIR): CRD validation skipped")
        if jsonschema is None:
            self.fail("python3 jsonschema is missing (Debian: python3-jsonschema)")
        need_kubectl(self)

    def volcano_objects(self):
        out = []
        for key in KUSTOMIZATIONS:
            for o in render(key):
                if o["apiVersion"].split("/")[0].endswith("volcano.sh"):
                    out.append((key, o))
        return out

    def test_schemas_loaded(self):
        kinds = {k for _, k in self.crds}
        self.assertLessEqual({"HyperNode", "Queue", "PodGroup", "Job"}, kinds)

    def test_volcano_objects_validate(self):
        objs = self.volcano_objects()
        kinds = {o["kind"] for _, o in objs}
        self.assertLessEqual({"Queue", "Job"}, kinds)
        for key, o in objs:
            with self.subTest(kustomization=key, kind=o["kind"], name=o["metadata"]["name"]):
                schema = self.crds.get((o["apiVersion"], o["kind"]))
                self.assertIsNotNone(schema, f"no CRD schema for {o['apiVersion']} {o['kind']}")
                self.assertEqual(schema_errors(o, schema), [])

    def test_validator_rejects_bad_objects(self):
        # The checks above must be able to fail: a Queue with weight 0 and a misspelt field,
        # a Job with an unknown networkTopology mode.
        queue_schema = self.crds[("scheduling.volcano.sh/v1beta1", "Queue")]
        q = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue", "metadata": {"name": "q"},
             "spec": {"weight": 0, "reclaimible": True}}
        errs = schema_errors(q, queue_schema)
        self.assertTrue(any("weight" in e for e in errs), errs)
        self.assertTrue(any("reclaimible" in e for e in errs), errs)
        job_schema = self.crds[("batch.volcano.sh/v1alpha1", "Job")]
        job = [o for k, o in self.volcano_objects() if o["kind"] == "Job"][0]
        job["spec"]["networkTopology"]["mode"] = "strict"
        self.assertTrue(schema_errors(job, job_schema))

    def test_podgroup_of_the_gang_validates(self):
        # Volcano's job controller turns the Job into a PodGroup; the fields we rely on
        # (minMember, queue, priorityClassName, networkTopology) must exist there too.
        schema = self.crds[("scheduling.volcano.sh/v1beta1", "PodGroup")]
        job = [o for k, o in self.volcano_objects() if o["kind"] == "Job"][0]
        pg = {"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
              "metadata": {"name": job["metadata"]["name"], "annotations": job["metadata"].get("annotations", {})},
              "spec": {"minMember": job["spec"]["minAvailable"], "queue": job["spec"]["queue"],
                       "priorityClassName": job["spec"]["priorityClassName"],
                       "networkTopology": job["spec"]["networkTopology"],
                       "minResources": {f"requests.{RESOURCE}": "16"}}}
        self.assertEqual(schema_errors(pg, schema), [])

    def test_agent_hypernodes_validate(self):
        # The HyperNodes the direct mode writes (and label discovery creates) for the example
        # tiers: tier >= 1, tierName = label key, exactMatch members.
        schema = self.crds[("topology.volcano.sh/v1alpha1", "HyperNode")]
        n = names_h()
        hn = {"apiVersion": "topology.volcano.sh/v1alpha1", "kind": "HyperNode",
              "metadata": {"name": "hyperaccel-domain-1a2b3c4d5e6f", "labels": {n["kManagedByLabel"]: n["kManagedByValue"]}},
              "spec": {"tier": 1, "tierName": n["kLabelLinkDomain"],
                       "members": [{"type": "Node", "selector": {"exactMatch": {"name": "lpu-node-01"}}}]}}
        self.assertEqual(schema_errors(hn, schema), [])


# ---------------------------------------------------------------------------------------------
# Flags: every flag the manifests pass exists in the binary that gets it.

def need_binary(test, name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        test.fail(f"{name} is not built in {BIN_DIR} (HYPERACCEL_BIN_DIR): the manifest tests run "
                  "the real binaries. Build it first (cmake --build <build> --target " + name + ").")
    return path


_help_cache = {}


def help_text(test, binary, sub=None):
    key = (binary, sub)
    if key not in _help_cache:
        cmd = [need_binary(test, binary)] + ([sub] if sub else []) + ["--help"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        test.assertEqual(proc.returncode, 0, f"{' '.join(cmd)} failed: {proc.stderr}")
        _help_cache[key] = proc.stdout + proc.stderr
    return _help_cache[key]


def help_flags(text):
    """Options CLI11 lists (lines like `  -h,--help` or `  --kubelet-dir TEXT [...]`), not mentions in descriptions."""
    return set(re.findall(r"^\s+(?:-\w,\s*)?(--[a-z0-9][a-z0-9-]*)", text, re.M))


def help_constraints(text):
    """{flag: ('choices', {...}) | ('range', lo, hi)} from CLI11's `TEXT:{a,b}` / `INT in [lo - hi]`."""
    out = {}
    for m in re.finditer(r"^\s+(?:-\w,\s*)?(--[a-z0-9-]+)\s+(\S.*)$", text, re.M):
        flag, rest = m.groups()
        c = re.search(r":\{([^}]*)\}", rest)
        r = re.search(r"in \[(-?[\d.]+) - (-?[\d.]+)\]", rest)
        if c:
            out[flag] = ("choices", {x.strip() for x in c.group(1).split(",")})
        elif r:
            out[flag] = ("range", float(r.group(1)), float(r.group(2)))
    return out


def help_subcommands(text):
    m = re.search(r"^SUBCOMMANDS:\s*$(.*?)(^\S|\Z)", text, re.M | re.S | re.I)
    return set(re.findall(r"^\s+(\w[\w-]*)", m.group(1), re.M)) if m else set()


def env_prefix(binary):
    return "HYPERACCEL_BRIDGE_" if binary == "hyperaccel-volcano-bridge" else "HYPERACCEL_"


class Flags(unittest.TestCase):
    """Images, commands and args match the binaries' real flags (`<bin> --help`)."""

    def setUp(self):
        need_kubectl(self)

    def all_containers(self):
        out = []
        for o in OVERLAYS:
            for w, c in our_containers(render(f"overlays/{o}")):
                out.append((o, w, c))
        return out

    def test_all_three_binaries_are_deployed(self):
        got = {os.path.basename(c["command"][0]) for _, _, c in self.all_containers()}
        self.assertEqual(got, set(BINARIES))

    def test_one_image_that_has_the_binaries(self):
        images = {c["image"] for _, _, c in self.all_containers()}
        self.assertEqual(len(images), 1, images)
        installed = dockerfile_installed_binaries()
        for _, _, c in self.all_containers():
            self.assertIn(c["command"][0], installed, "the manifest runs a path the image does not have")

    def test_flags_exist(self):
        for overlay, w, c in self.all_containers():
            with self.subTest(overlay=overlay, container=c["name"]):
                self.check_flags(c)

    def check_flags(self, c):
        binary = os.path.basename(c["command"][0])
        args = list(c["command"][1:]) + list(c.get("args", []))
        sub = None
        top = help_text(self, binary)
        subs = help_subcommands(top)
        if args and not args[0].startswith("-"):
            sub = args.pop(0)
            self.assertIn(sub, subs, f"{binary} has no subcommand {sub} (has: {sorted(subs)})")
        elif binary == "hyperaccel-topology-agent":
            self.fail("the agent needs a subcommand (run)")
        known = help_flags(help_text(self, binary, sub)) | help_flags(top)
        limits = {**help_constraints(top), **help_constraints(help_text(self, binary, sub))}
        for a in args:
            self.assertTrue(a.startswith("--"), f"positional argument {a!r}")
            flag, has_value, value = a.partition("=")
            self.assertIn(flag, known, f"{binary} {sub or ''} has no flag {flag}")
            if has_value and flag in limits:
                lim = limits[flag]
                if lim[0] == "choices":
                    self.assertIn(value, lim[1], f"{flag}: {value!r} is not one of {sorted(lim[1])}")
                else:
                    self.assertTrue(lim[1] <= float(value) <= lim[2], f"{flag}={value} outside {lim[1:]}")
        for e in c.get("env", []):
            name = e["name"]
            if name.startswith("HYPERACCEL_"):
                pre = env_prefix(binary)
                self.assertTrue(name.startswith(pre), name)
                self.assertIn("--" + name[len(pre):].lower().replace("_", "-"), known, name)

    def test_probes_hit_the_listen_port(self):
        listen_flag = {"hyperaccel-device-plugin": "--metrics-address", "hyperaccel-topology-agent": "--admin-address",
                       "hyperaccel-volcano-bridge": "--listen"}
        for overlay, w, c in self.all_containers():
            binary = os.path.basename(c["command"][0])
            with self.subTest(overlay=overlay, container=c["name"]):
                flag = listen_flag[binary]
                sub = "run" if "agent" in binary else None
                self.assertIn(flag, help_flags(help_text(self, binary, sub)) | help_flags(help_text(self, binary)))
                value = flag_value(c["args"], flag)
                self.assertIsNotNone(value, f"{flag} not set explicitly")
                port = int(value.rsplit(":", 1)[1])
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                for probe in ("livenessProbe", "readinessProbe"):
                    p = c[probe]["httpGet"]["port"]
                    self.assertEqual(ports.get(p, p), port)

    def test_bridge_serves_the_scheduler_config(self):
        """Starts the bridge with the Deployment's args and calls it the way the scheduler config says."""
        objs = render("overlays/labels")
        dep = one(self, objs, "Deployment", "hyperaccel-volcano-bridge")
        c = container(self, dep, "volcano-bridge")
        conf = scheduler_conf(objs)
        ext = [p for t in conf["tiers"] for p in t["plugins"] if p["name"] == "extender"][0]["arguments"]
        prefix_path = re.match(r"^http://[^/]+(/.*)?$", ext["extender.urlPrefix"]).group(1) or ""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = [a if not a.startswith("--listen") else f"--listen=127.0.0.1:{port}" for a in c["args"]]
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([need_binary(self, "hyperaccel-volcano-bridge")] + args, stdout=log,
                                stderr=subprocess.STDOUT, text=True)

        def output():
            log.seek(0)
            return log.read()[-2000:]
        try:
            base = f"http://127.0.0.1:{port}"

            def call(path, body=None):
                req = urllib.request.Request(base + path, data=body, method="POST" if body is not None else "GET",
                                             headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        return r.status, r.read()
                except urllib.error.HTTPError as e:
                    return e.code, e.read()

            deadline = time.time() + 20
            while True:
                try:
                    status, _ = call(c["readinessProbe"]["httpGet"]["path"])
                    break
                except (urllib.error.URLError, ConnectionError):
                    if proc.poll() is not None or time.time() > deadline:
                        self.fail(f"bridge did not start: {output()}")
                    time.sleep(0.1)
            self.assertEqual(status, 200)
            self.assertEqual(call(c["livenessProbe"]["httpGet"]["path"])[0], 200)
            fixtures = os.path.join(SHARED, "fixtures", "volcano")
            verbs = {k[len("extender."):-len("Verb")]: v for k, v in ext.items() if k.endswith("Verb")}
            self.assertTrue(verbs)
            # The scheduler opens a session first; then every configured verb must be served
            # (HTTP 200: any other status is a transport error for Volcano).
            order = sorted(verbs, key=lambda k: (k != "onSessionOpen", k == "onSessionClose", k))
            for key in order:
                verb = verbs[key]
                # reclaimable has preemptable's shape, deallocate allocate's.
                name = {"reclaimable": "preemptable", "deallocateFunc": "allocateFunc"}.get(key, key)
                fixture = os.path.join(fixtures, f"{name}.request.json")
                body = open(fixture, "rb").read() if os.path.exists(fixture) else b"{}"
                with self.subTest(verb=key, path=f"{prefix_path}/{verb}"):
                    status, reply = call(f"{prefix_path}/{verb}", body)
                    if not os.path.isdir(fixtures) and status == 400:
                        continue  # no fixture bodies: only the route is checked (400 = parsed, not 404)
                    self.assertEqual(status, 200, f"{reply[:300]!r}\nbridge log:\n{output()}")
                    if key == "predicate":
                        self.assertIn("code", json.loads(reply))
                    if key == "prioritize":
                        self.assertIsInstance(json.loads(reply).get("nodeScore"), dict)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    def test_node_containers_start_with_their_args(self):
        """Runs both DaemonSet containers with the rendered args (paths and ports moved into a temp
        dir, no kubelet, an API server that refuses connections): the binaries accept the args,
        start, and answer their probes with the state they are in."""
        for overlay in ("labels", "emulated"):
            objs = render(f"overlays/{overlay}")
            ds = one(self, objs, "DaemonSet", "hyperaccel-node")
            cabling_cm = [v["configMap"]["name"] for v in pod_spec(ds)["volumes"] if "configMap" in v][0]
            for c in containers_of(ds):
                with self.subTest(overlay=overlay, container=c["name"]):
                    self.start_and_probe(c, one(self, objs, "ConfigMap", cabling_cm)["data"])

    def start_and_probe(self, c, cabling_data):
        tmp = tempfile.mkdtemp(prefix="manifests-node-")
        try:
            for name, text in cabling_data.items():
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write(text)
            os.makedirs(os.path.join(tmp, "kubelet"))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            with socket.socket() as s:  # a port nobody listens on: the API server is down
                s.bind(("127.0.0.1", 0))
                dead = s.getsockname()[1]
            moved = {"--kubelet-dir": os.path.join(tmp, "kubelet"), "--cdi-dir": os.path.join(tmp, "cdi"),
                     "--pod-resources-socket": os.path.join(tmp, "kubelet", "pod-resources.sock"),
                     "--metrics-address": f"127.0.0.1:{port}", "--admin-address": f"127.0.0.1:{port}"}
            args = []
            for a in c["args"]:
                flag, eq, value = a.partition("=")
                if flag == "--cabling":
                    a = f"--cabling={os.path.join(tmp, os.path.basename(value))}"
                elif flag in moved:
                    a = f"{flag}={moved[flag]}"
                args.append(a)
            binary = os.path.basename(c["command"][0])
            env = dict(os.environ, TMPDIR=tmp, NODE_NAME="lpu-node-01", POD_NAME="hyperaccel-node-test",
                       POD_NAMESPACE=NAMESPACE)
            if binary == "hyperaccel-topology-agent":
                kubeconfig = os.path.join(tmp, "kubeconfig")
                with open(kubeconfig, "w", encoding="utf-8") as f:
                    yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                                    "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{dead}"}}],
                                    "users": [{"name": "t", "user": {"token": "x"}}],
                                    "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}, f)
                args.append(f"--kubeconfig={kubeconfig}")
            log = open(os.path.join(tmp, "log"), "w+")
            proc = subprocess.Popen([need_binary(self, binary)] + args, stdout=log, stderr=subprocess.STDOUT,
                                    env=env)
            try:
                def get(path):
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                            return r.status, r.read().decode()
                    except urllib.error.HTTPError as e:
                        return e.code, e.read().decode()

                deadline = time.time() + 60
                while True:
                    try:
                        live = get(c["livenessProbe"]["httpGet"]["path"])
                        break
                    except (urllib.error.URLError, ConnectionError):
                        log.seek(0)
                        if proc.poll() is not None:
                            self.fail(f"{binary} exited {proc.returncode} with the manifest's args: {log.read()[-2000:]}")
                        if time.time() > deadline:
                            self.fail(f"{binary} never answered: {log.read()[-2000:]}")
                        time.sleep(0.2)
                ready = get(c["readinessProbe"]["httpGet"]["path"])
                if binary == "hyperaccel-device-plugin":
                    # Started and serving; not ready without a kubelet, and it says why.
                    self.assertEqual(live[0], 503)
                    self.assertIn("kubelet", live[1])
                else:
                    # The loop runs (live) but cannot publish (not ready): the API server is down.
                    self.assertEqual(live[0], 200, live[1])
                    self.assertEqual(ready[0], 503, ready[1])
                self.assertIsNone(proc.poll())
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def show(self, cabling, node, cards):
        cmd = [need_binary(self, "hyperaccel-topology-agent"), "show", "--format", "json", f"--emulate={cards}",
               f"--node-name={node}", f"--cabling={cabling}"]
        env = dict(os.environ, TMPDIR=tempfile.mkdtemp(prefix="manifests-show-"))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        shutil.rmtree(env["TMPDIR"], ignore_errors=True)
        self.assertEqual(proc.returncode, 0, f"{' '.join(cmd)}: {proc.stderr}")
        return json.loads(proc.stdout)

    def test_cabling_files_parse_with_the_real_parser(self):
        # The example cabling passes the agent's own validation (show exits 2 on a bad file).
        base = os.path.join(MANIFESTS, "base", "cabling.yaml")
        self.show(base, "lpu-node-01", 4)
        # The emulated overlay's file names the emulated cards' serials: each node's 8 cards are
        # linked (and cabled on to the other node).
        emu = os.path.join(MANIFESTS, "overlays", "emulated", "cabling.yaml")
        doc = yaml.safe_load(open(emu, encoding="utf-8"))
        nodes = sorted({l[e]["node"] for l in doc["links"] for e in ("a", "b")})
        for node in nodes:
            with self.subTest(node=node):
                inv = self.show(emu, node, 8)
                text = json.dumps(inv)
                self.assertIn(f"EMU-{node}-07", text)
                serials = {c.get("serial") for c in inv.get("cards", [])}
                self.assertEqual(len(serials), 8)
                for link in doc["links"]:
                    for end in ("a", "b"):
                        if link[end]["node"] == node:
                            self.assertIn(link[end]["serial"], serials, "the overlay's cabling names a card emulation does not have")
                links = inv.get("links", [])
                self.assertGreaterEqual(len(links), 8, f"expected the ring's links on {node}, got {links}")


# ---------------------------------------------------------------------------------------------
# RBAC derived from the agent's REST calls.

AGENT_SRC = os.path.join(SOURCE, "topology-agent", "src")
# The REST client the agent uses (moved from topology-agent/ to the shared kube/ library).
KUBE_CLIENT_SRC = os.path.join(SOURCE, "kube", "src", "client.cpp")
AGENT_INC = os.path.join(SOURCE, "topology-agent", "include", "hyperaccel", "topology_agent")
CLIENT_VERBS = ("Get", "List", "Watch", "Create", "Replace", "MergePatch", "Delete", "Update")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def function_bodies(text):
    """{'Class::Method': body} for out-of-line member definitions (brace matched)."""
    out = {}
    for m in re.finditer(r"^[\w:<>,*&\s]*?\b(\w+)::(\w+)\([^;{]*\)\s*(const)?\s*(:[^{]*)?\{", text, re.M):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out[f"{m.group(1)}::{m.group(2)}"] = text[m.end():i - 1]
    return out


def call_args(text, start):
    """The argument list text of the call whose '(' is at text[start]."""
    depth, i = 0, start
    while i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i]
        i += 1
    return text[start + 1:]


def split_args(args):
    out, depth, cur = [], 0, ""
    for ch in args:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def client_http_methods():
    """Client verb -> list of (HTTP method, watch?) from kube/src/client.cpp (what each verb sends)."""
    text = strip_comments(open(KUBE_CLIENT_SRC, encoding="utf-8").read())
    bodies = function_bodies(text)
    out = {}
    for verb in CLIENT_VERBS:
        body = bodies.get(f"Client::{verb}")
        if body is None:
            raise AssertionError(f"kube_client.cpp: Client::{verb} not found")
        sends = re.findall(r'Send(?:Once)?\("([A-Z]+)"', body)
        calls = [v for v in CLIENT_VERBS if v != verb and re.search(rf"\b{v}\(", body)]
        methods = [(m, "watch" in body.lower() and verb == "Watch") for m in sends]
        for v in calls:  # e.g. Update = Get + Replace
            methods += out.get(v) or [(m, False) for m in re.findall(r'Send\("([A-Z]+)"', bodies[f"Client::{v}"])]
        if verb == "Watch" and not methods:
            methods = [("GET", True)]
        out[verb] = methods
    return out


def rbac_verb(method, is_collection, watch):
    if method == "GET":
        return "watch" if watch else ("list" if is_collection else "get")
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]


def path_constants():
    consts = {}
    for d in (AGENT_INC, AGENT_SRC):
        for f in os.listdir(d):
            text = open(os.path.join(d, f), encoding="utf-8").read()
            consts.update(dict(re.findall(r'constexpr const char\*\s+(k\w+Path)\s*=\s*"([^"]+)"', text)))
            for name, body in re.findall(r"std::string\s+(\w+Path)\(const std::string& \w+\)\s*\{\s*return\s+([^;]+);",
                                         text):
                consts[name + "()"] = "".join(re.findall(r'"([^"]*)"', body.replace("+ ns +", '"{ns}"')))
    return consts


def resolve_path(expr, body, consts, depth=0):
    """Collection path and whether `expr` names one object of it, from a C++ path expression."""
    expr = expr.strip()
    for name, value in consts.items():
        token = name[:-2] if name.endswith("()") else name
        if re.search(rf"\b{re.escape(token)}\b", expr):
            # "<collection>" + "/" + name  => an object; the bare constant => the collection.
            item = bool(re.search(r'\+\s*"/"', expr)) or bool(re.search(r'\+\s*\w', expr.split(token, 1)[1]))
            return value, item
    m = re.fullmatch(r"(\w+)(\s*\+.*)?", expr, re.S)
    if m and depth < 4:
        decl = re.search(rf"std::string\s+{m.group(1)}\s*=\s*([^;]+);", body)
        if decl:
            coll, item = resolve_path(decl.group(1), body, consts, depth + 1)
            return coll, item or bool(m.group(2))
    raise AssertionError(f"cannot resolve the API path of `{expr}`")


def api_resource(path):
    """('group', 'resource') of an API path like /api/v1/nodes or /apis/g/v/namespaces/{ns}/x."""
    parts = [p for p in path.split("/") if p]
    if parts[0] == "api":
        rest, group = parts[2:], ""
    else:
        rest, group = parts[3:], parts[1]
    if rest and rest[0] == "namespaces":
        rest = rest[2:]
    return group, rest[0]


def agent_calls():
    """[(class, group, resource, verb)] for every REST call in the agent's reconcilers."""
    methods = client_http_methods()
    consts = path_constants()
    calls = []
    scanned = 0
    for f in sorted(os.listdir(AGENT_SRC)):
        if not f.endswith(".cpp") or f == "kube_client.cpp":
            continue
        text = strip_comments(open(os.path.join(AGENT_SRC, f), encoding="utf-8").read())
        for fn, body in function_bodies(text).items():
            cls = fn.split("::")[0]
            for m in re.finditer(r"\b(\w*client\w*)(?:\(\))?\s*->\s*(\w+)\s*\(", body):
                verb = m.group(2)
                if verb in ("stats", "config"):
                    continue
                if verb not in CLIENT_VERBS:
                    raise AssertionError(f"{f}: {fn} calls client->{verb}(), which this test does not know")
                scanned += 1
                path_expr = split_args(call_args(body, m.end() - 1))[0]
                coll, item = resolve_path(path_expr, body, consts)
                group, resource = api_resource(coll)
                for method, watch in methods[verb]:
                    calls.append((cls, group, resource, rbac_verb(method, not item, watch)))
    if scanned < 5:
        raise AssertionError(f"only {scanned} client calls found in {AGENT_SRC}: did the code move?")
    return calls


def direct_only_classes():
    """Classes Agent::Create builds only under `hypernodes == "direct"`."""
    text = strip_comments(open(os.path.join(AGENT_SRC, "agent.cpp"), encoding="utf-8").read())
    body = function_bodies(text).get("Agent::Create")
    if body is None:
        raise AssertionError("agent.cpp: Agent::Create not found")
    m = re.search(r'if\s*\([^)]*hypernodes\s*==\s*"direct"\s*\)\s*\{', body)
    if m is None:
        raise AssertionError('agent.cpp: no `if (... hypernodes == "direct") {` block in Agent::Create')
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(body[i], 0)
        i += 1
    inside = set(re.findall(r"make_unique<(\w+)>", body[m.end():i]))
    outside = set(re.findall(r"make_unique<(\w+)>", body[:m.start()] + body[i:]))
    return inside - outside, outside


def granted(objs, sa, namespace):
    """{(group, resource, verb): (scope, resourceNames)} granted to a ServiceAccount."""
    roles = {(r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]): r
             for r in objs if r["kind"] in ("Role", "ClusterRole")}
    out = {}
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s["name"] == sa and s.get("namespace") == namespace
                   for s in b.get("subjects", [])):
            continue
        ref = b["roleRef"]
        role_ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], role_ns, ref["name"]))
        if role is None:
            raise AssertionError(f"{b['kind']} {b['metadata']['name']} refers to a missing {ref['kind']} {ref['name']}")
        scope = b["metadata"].get("namespace") or "*"
        for rule in role.get("rules", []):
            for g in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    for v in rule.get("verbs", []):
                        key = (g, res, v)
                        if key in out:
                            raise AssertionError(f"{key} granted twice")
                        out[key] = (scope, tuple(rule.get("resourceNames", [])))
    return out


class Rbac(unittest.TestCase):
    """RBAC grants exactly the API calls the agent's code makes, per mode.

    The required set is derived from the code, not from a list kept by hand: every
    `client->Verb(path, ...)` call in topology-agent/src/*.cpp (all but kube_client.cpp), its
    path resolved through the path constants (reconcilers.h, LeasesPath) and local variables,
    the HTTP method(s) each client verb sends read from kube_client.cpp (Update = GET + PUT), and
    the mode from Agent::Create (classes built only under `hypernodes == "direct"`).
    The RBAC section of docs/topology-agent.md is checked against the same set.
    """

    @classmethod
    def setUpClass(cls):
        cls.calls = agent_calls()
        cls.direct_only, cls.always = direct_only_classes()

    def required(self, mode):
        out = set()
        for cls, group, resource, verb in self.calls:
            if mode == "direct" or cls not in self.direct_only:
                out.add((group, resource, verb))
        return out

    def test_code_scan_finds_the_known_calls(self):
        # Sanity of the scanner itself: these calls are the agent's core and must be seen.
        got = {(c, g, r, v) for c, g, r, v in self.calls}
        self.assertIn(("NodePublisher", "", "nodes", "patch"), got)
        self.assertIn(("NodePublisher", "", "nodes", "get"), got)
        self.assertIn("NodePublisher", self.always)
        self.assertIn("HyperNodeWriter", self.direct_only)

    def test_rbac_matches_code(self):
        need_kubectl(self)
        for overlay in OVERLAYS:
            objs = render(f"overlays/{overlay}")
            ds = one(self, objs, "DaemonSet", "hyperaccel-node")
            mode = flag_value(container(self, ds, "topology-agent")["args"], "--hypernodes") or "labels"
            sa = pod_spec(ds)["serviceAccountName"]
            grants = granted(objs, sa, ds["metadata"]["namespace"])
            need = self.required(mode)
            with self.subTest(overlay=overlay, mode=mode):
                self.assertEqual(set(grants), need,
                                 f"\nmissing: {sorted(need - set(grants))}\nextra:   {sorted(set(grants) - need)}")
                # Namespaced resources are granted in the namespace the agent uses (its own:
                # --lease-namespace unset => $POD_NAMESPACE from the downward API).
                agent = container(self, ds, "topology-agent")
                lease_ns = flag_value(agent["args"], "--lease-namespace") or ds["metadata"]["namespace"]
                lease_name = flag_value(agent["args"], "--lease-name") or "hyperaccel-topology-agent"
                for (g, r, v), (scope, names) in grants.items():
                    if r == "leases":
                        self.assertEqual(scope, lease_ns, "Lease rights belong in the Lease's namespace only")
                        if names:
                            self.assertIn(lease_name, names)
                    else:
                        self.assertEqual(scope, "*", f"{r} is cluster-scoped")
                        self.assertFalse(names)

    def test_documented_rbac_matches_code(self):
        page = os.path.join(SOURCE, "docs", "topology-agent.md")
        self.assertTrue(os.path.exists(page), f"{page} is missing")
        text = open(page, encoding="utf-8").read()
        sec = re.search(r"^##+ RBAC the agent needs\s*$(.*?)(^##+ |\Z)", text, re.M | re.S)
        self.assertIsNotNone(sec, "docs/topology-agent.md has no 'RBAC the agent needs' section")
        blocks = re.findall(r"```yaml\n(.*?)```", sec.group(1), re.S)
        documented = []
        for b in blocks:
            rules = []
            for d in yaml.safe_load_all(b if not b.lstrip().startswith("-") else "rules:\n" + b):
                if isinstance(d, dict):
                    rules += d.get("rules", [])
            documented.append({(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
                               for v in rule["verbs"]})
        self.assertGreaterEqual(len(documented), 2, "expected a both-modes block and a direct block")
        self.assertEqual(documented[0], self.required("labels"))
        self.assertEqual(documented[0] | set().union(*documented[1:]), self.required("direct"))


# ---------------------------------------------------------------------------------------------
# Monitoring (optional component)

class Monitoring(unittest.TestCase):
    """manifests/monitoring is a Kustomize Component that any overlay can add.

    Rendered here on top of each overlay from a copy of manifests/ (kustomize refuses absolute
    paths). That the dashboard and alerts use only exported metrics is checked against the real
    binaries by tests/monitoring (ctest monitoring_test).
    """

    def setUp(self):
        need_kubectl(self)

    def render_with_component(self, overlay):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(MANIFESTS, os.path.join(tmp, "manifests"))
            os.makedirs(os.path.join(tmp, "check"))
            with open(os.path.join(tmp, "check", "kustomization.yaml"), "w", encoding="utf-8") as f:
                f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                        f"resources:\n- ../manifests/overlays/{overlay}\ncomponents:\n- ../manifests/monitoring\n")
            proc = subprocess.run([KUBECTL, "kustomize", os.path.join(tmp, "check")], capture_output=True, text=True,
                                  timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            return [d for d in yaml.safe_load_all(proc.stdout) if d]

    def test_component_adds_monitors_rules_and_dashboard(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                objs = self.render_with_component(overlay)
                base = render(f"overlays/{overlay}")
                self.assertFalse(find(base, "PodMonitor"), "monitoring must stay optional")
                self.assertEqual(len(objs), len(base) + 4, "component adds 2 PodMonitors, a rule, a ConfigMap")
                rule = one(self, objs, "PrometheusRule", "hyperaccel")
                self.assertEqual(rule["metadata"]["namespace"], NAMESPACE)
                cm = one(self, objs, "ConfigMap", "hyperaccel-grafana-dashboard")
                self.assertEqual(cm["metadata"]["namespace"], NAMESPACE)
                self.assertEqual(cm["metadata"]["labels"].get("grafana_dashboard"), "1")
                dash = json.loads(cm["data"]["hyperaccel.json"])
                self.assertEqual(dash["uid"], "hyperaccel-overview")

    def test_pod_monitors_select_our_pods_and_named_ports(self):
        objs = self.render_with_component("labels")
        workloads = {"hyperaccel-node": one(self, objs, "DaemonSet", "hyperaccel-node"),
                     "hyperaccel-volcano-bridge": one(self, objs, "Deployment", "hyperaccel-volcano-bridge")}
        expected_ports = {"hyperaccel-node": {"dp-metrics", "agent-admin"}, "hyperaccel-volcano-bridge": {"http"}}
        for name, workload in workloads.items():
            with self.subTest(monitor=name):
                pm = one(self, objs, "PodMonitor", name)
                self.assertEqual(pm["metadata"]["namespace"], workload["metadata"]["namespace"])
                pod_labels = workload["spec"]["template"]["metadata"]["labels"]
                for k, v in pm["spec"]["selector"]["matchLabels"].items():
                    self.assertEqual(pod_labels.get(k), v, f"selector {k}={v} does not match the pods")
                ports = {p["name"]: p["containerPort"] for c in pod_spec(workload)["containers"]
                         for p in c.get("ports", [])}
                got = {e["port"] for e in pm["spec"]["podMetricsEndpoints"]}
                self.assertEqual(got, expected_ports[name])
                for e in pm["spec"]["podMetricsEndpoints"]:
                    self.assertIn(e["port"], ports, f"{e['port']} is not a named port of {name}")
                    self.assertEqual(e["path"], "/metrics")
                    self.assertIn({"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
                                  e.get("relabelings", []), "dashboard and alerts group by `node`")


# ---------------------------------------------------------------------------------------------
# Dockerfile

DOCKERFILE = os.path.join(SOURCE, "Dockerfile")


def dockerfile_stages():
    stages, cur = [], None
    text = open(DOCKERFILE, encoding="utf-8").read()
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        if instr.upper() == "FROM":
            cur = {"from": rest.split()[0], "name": rest.split()[-1] if " AS " in rest.upper() else None, "lines": []}
            stages.append(cur)
        elif cur is not None:
            cur["lines"].append((instr.upper(), rest.strip()))
    return stages


def runtime_packages():
    pkgs = []
    for instr, rest in dockerfile_stages()[-1]["lines"]:
        if instr == "RUN" and "apt-get install" in rest:
            seg = rest.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in seg.split() if not w.startswith("-")]
    return pkgs


def dockerfile_installed_binaries():
    out = set()
    for instr, rest in dockerfile_stages()[-1]["lines"]:
        if instr == "COPY" and "--from=" in rest:
            words = [w for w in rest.split() if not w.startswith("--")]
            dest = words[-1]
            for src in words[:-1]:
                out.add(os.path.join(dest, os.path.basename(src)) if dest.endswith("/") else dest)
    return out


def installed_depends_closure(pkgs):
    """Packages reachable through Depends/Pre-Depends of installed packages (dpkg's view)."""
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"], capture_output=True,
                          text=True)
    deps = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition("\t")
        deps[name] = [alt.split("|")[0].strip().split(" ")[0].split(":")[0] for alt in rest.split(",")]
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p and p not in seen:
            seen.add(p)
            todo += deps.get(p, [])
    return seen


class Dockerfile(unittest.TestCase):
    """The image builds what the manifests run, with runtime packages that exist and suffice.

    No container engine runs here, so the image itself is not built; what can be checked is.
    """

    def test_multi_stage_layout(self):
        stages = dockerfile_stages()
        self.assertEqual(len(stages), 2)
        self.assertEqual(stages[0]["from"], "debian:bookworm")
        self.assertEqual(stages[-1]["from"], "debian:bookworm-slim")
        build = " ".join(r for _, r in stages[0]["lines"])
        self.assertIn("scripts/install-deps", build, "the build stage installs what developers and CI have")
        self.assertIn("cmake --preset release", build)
        for b in BINARIES + DRA_BINARIES + TOOLS:
            self.assertIn(b, build)
        installed = dockerfile_installed_binaries()
        self.assertEqual({os.path.basename(p) for p in installed if p.startswith("/usr/bin/")},
                         set(BINARIES + DRA_BINARIES + TOOLS))
        # XRT runs in this helper (never in a daemon), which the binaries look for in
        # <bin>/../lib/hyperaccel/.
        self.assertIn("/usr/lib/hyperaccel/hyperaccel-xrt-probe", installed)
        runtime = " ".join(r for _, r in stages[-1]["lines"])
        self.assertIn("USER", [i for i, _ in stages[-1]["lines"]])
        self.assertNotIn("install-deps", runtime)

    def test_runtime_packages_are_runtime_only(self):
        pkgs = runtime_packages()
        self.assertGreater(len(pkgs), 5)
        for p in pkgs:
            self.assertFalse(p.endswith("-dev"), f"{p}: a -dev package in the runtime image")
        # gRPC and Protobuf are linked statically into the daemons (docs/footprint.md).
        self.assertIn("libxrt1", pkgs)
        self.assertIn("--no-install-recommends", open(DOCKERFILE, encoding="utf-8").read())

    def test_runtime_packages_exist(self):
        if not shutil.which("apt-cache"):
            self.skipTest("apt-cache not available")
        lists = "/var/lib/apt/lists"
        if not os.path.isdir(lists) or not any(f.endswith("Packages") or "Packages" in f for f in os.listdir(lists)):
            self.skipTest("no apt package lists (run apt-get update): package names not checked")
        pkgs = runtime_packages()
        # One apt-cache call for all (each call reads the whole package cache).
        proc = subprocess.run(["apt-cache", "policy"] + pkgs, capture_output=True, text=True)
        sections = dict(re.findall(r"^(\S+):\n((?:[ \t]+.*\n?)*)", proc.stdout, re.M))
        for p in pkgs:
            with self.subTest(package=p):
                m = re.search(r"Candidate:\s*(\S+)", sections.get(p, ""))
                self.assertTrue(m and m.group(1) != "(none)", f"no Debian package {p}")

    def test_runtime_packages_cover_the_binaries(self):
        """Every shared library the built binaries load comes from a runtime package (or its deps)."""
        if not shutil.which("ldd") or not shutil.which("dpkg"):
            self.skipTest("ldd/dpkg not available")
        allowed = installed_depends_closure(runtime_packages() + ["libc6", "libgcc-s1", "libstdc++6"])
        libs = {}
        for b in BINARIES + DRA_BINARIES + TOOLS + ["hyperaccel-xrt-probe"]:
            out = subprocess.run(["ldd", need_binary(self, b)], capture_output=True, text=True).stdout
            if re.search(r"\blib(asan|ubsan)\.so", out):
                # Sanitizer builds link gRPC, Protobuf and Abseil shared (cmake/DaemonLink.cmake);
                # the image is built with the release preset, which links them statically.
                self.skipTest("sanitizer build: its binaries do not link like the image's")
            for line in out.splitlines():
                m = re.match(r"\s*(\S+)\s*=>\s*(\S+)", line)
                if m:
                    libs.setdefault(m.group(1), (b, m.group(2)))
        self.assertTrue(libs, "ldd found no libraries")
        # Debian's merged /usr: dpkg may know a library under /lib or /usr/lib.
        candidates = {}
        for soname, (b, lib) in libs.items():
            real = os.path.realpath(lib)
            candidates[soname] = {lib, real, re.sub(r"^/usr/lib/", "/lib/", real), re.sub(r"^/lib/", "/usr/lib/", real)}
        proc = subprocess.run(["dpkg", "-S"] + sorted(set().union(*candidates.values())), capture_output=True, text=True)
        owner_of = {}
        for line in proc.stdout.splitlines():
            pkg, _, path = line.partition(": ")
            owner_of[path.strip()] = pkg.split(":")[0]
        for soname, (b, lib) in sorted(libs.items()):
            with self.subTest(binary=b, library=soname):
                self.assertNotEqual(lib, "not", f"{soname} not found")
                if re.match(r"lib(asan|ubsan|lsan|tsan|clang_rt)", soname):
                    continue  # sanitizer builds only
                owners = {owner_of[c] for c in candidates[soname] if c in owner_of}
                self.assertTrue(owners, f"{lib} belongs to no Debian package")
                self.assertTrue(owners & allowed,
                                f"{soname} comes from {owners}, which the runtime image does not install")

    def test_dockerignore_keeps_build_trees_out(self):
        text = open(os.path.join(SOURCE, ".dockerignore"), encoding="utf-8").read().split()
        self.assertIn(".git", text)
        self.assertTrue(any(p.startswith("build") for p in text))


# ---------------------------------------------------------------------------------------------


class Dra(unittest.TestCase):
    """overlays/dra and examples/dra: the driver's DaemonSet, RBAC, classes, admission policy."""

    def setUp(self):
        need_kubectl(self)
        self.objs = render("overlays/dra")
        self.ds = one(self, self.objs, "DaemonSet", "hyperaccel-dra-driver")
        self.c = container(self, self.ds, "dra-driver")

    def defaults(self):
        """--flag -> default value, from `hyperaccel-dra-driver --help` (CLI11 `TEXT=default`)."""
        text = help_text(self, "hyperaccel-dra-driver")
        return dict(re.findall(r"^\s+(--[a-z0-9-]+) TEXT=(\S+)", text, re.M))

    def test_the_device_plugin_is_not_deployed_with_it(self):
        node = one(self, self.objs, "DaemonSet", "hyperaccel-node")
        names = [c["name"] for c in containers_of(node)]
        self.assertNotIn("device-plugin", names)
        self.assertIn("topology-agent", names)
        vols = {v["name"] for v in pod_spec(node)["volumes"]}
        mounted = {m["name"] for c in containers_of(node) for m in c.get("volumeMounts", [])}
        self.assertEqual(vols, mounted, "volumes without a mount after removing the device plugin")
        for o in self.objs:
            for c in containers_of(o) if o["kind"] in ("DaemonSet", "Deployment") else []:
                self.assertNotIn("hyperaccel-device-plugin", " ".join(c.get("command", [])))

    def test_the_image_has_the_driver(self):
        self.assertIn(self.c["command"][0], dockerfile_installed_binaries())
        self.assertEqual(self.c["image"], {c["image"] for _, c in our_containers(self.objs)}.pop())

    def test_flags_exist_and_paths_are_the_defaults(self):
        text = help_text(self, "hyperaccel-dra-driver")
        known = help_flags(text)
        args = self.c["args"]
        for a in args:
            self.assertIn(a.partition("=")[0], known, a)
        self.assertEqual(self.c["command"], ["/usr/bin/hyperaccel-dra-driver"])
        self.assertEqual(flag_value(args, "--kubelet-plugin"), "true")
        d = self.defaults()
        self.assertEqual(d.get("--kubelet-dir"), "/var/lib/kubelet")
        self.assertEqual(d.get("--cdi-dir"), "/var/run/cdi")
        # The manifest passes the defaults explicitly (or leaves them out).
        for flag in ("--kubelet-dir", "--cdi-dir"):
            self.assertIn(flag_value(args, flag), (None, d[flag]), flag)
        self.assertIn(flag_value(args, "--checkpoint-dir"), (None, "/var/lib/kubelet/plugins/" + DRA_DRIVER))

    def test_host_paths_match_the_sockets_and_specs_the_driver_writes(self):
        vols = {v["name"]: v for v in pod_spec(self.ds)["volumes"]}
        mounts = {m["mountPath"]: m for m in self.c["volumeMounts"]}
        d = self.defaults()
        kubelet = flag_value(self.c["args"], "--kubelet-dir") or d["--kubelet-dir"]
        cdi = flag_value(self.c["args"], "--cdi-dir") or d["--cdi-dir"]
        checkpoint = flag_value(self.c["args"], "--checkpoint-dir") or kubelet + "/plugins/" + DRA_DRIVER
        need = [kubelet + "/plugins", kubelet + "/plugins_registry", cdi]
        for path in need:
            with self.subTest(path=path):
                self.assertIn(path, mounts, f"{path} is not mounted")
                m = mounts[path]
                self.assertFalse(m.get("readOnly", False), f"{path} must be writable")
                hp = vols[m["name"]].get("hostPath")
                self.assertIsNotNone(hp, f"{path} must be a hostPath")
                # The kubelet dials the endpoint path the plugin reports: identical on both sides.
                self.assertEqual(hp["path"], path)
        self.assertTrue(checkpoint.startswith(need[0] + "/"), "the checkpoint must live on a hostPath")
        for path in ("/sys", "/dev"):
            self.assertTrue(mounts[path].get("readOnly"), path)
        sc = self.c["securityContext"]
        self.assertFalse(sc.get("privileged", False))
        self.assertFalse(sc.get("allowPrivilegeEscalation", True))
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertTrue(sc.get("readOnlyRootFilesystem"))

    def test_probes_hit_the_admin_port(self):
        value = flag_value(self.c["args"], "--admin-address")
        port = int(value.rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            p = self.c[probe]["httpGet"]["port"]
            self.assertEqual(ports.get(p, p), port)

    def test_rbac_is_least_privilege(self):
        got = granted(self.objs, "hyperaccel-dra-driver", NAMESPACE)
        want = {("resource.k8s.io", "resourceslices", v) for v in ("get", "list", "watch", "create", "update", "delete")}
        want |= {("resource.k8s.io", "resourceclaims", v) for v in ("get", "list", "watch")}
        # nodes: get for the owner reference, patch for the hyperaccel.ai/dra.arcs label (publisher.cpp).
        want |= {("", "nodes", "get"), ("", "nodes", "patch")}
        self.assertEqual(set(got), want)
        for key, (_, names) in got.items():
            self.assertEqual(names, (), f"{key}: unexpected resourceNames")
        self.assertEqual(pod_spec(self.ds)["serviceAccountName"], "hyperaccel-dra-driver")

    def test_device_classes_select_by_kind(self):
        classes = {c["metadata"]["name"]: c for c in find(self.objs, "DeviceClass")}
        self.assertEqual(set(classes), {DRA_DRIVER, "card." + DRA_DRIVER, "arc." + DRA_DRIVER})
        for name, c in classes.items():
            self.assertEqual(c["apiVersion"], "resource.k8s.io/v1")
            exprs = " && ".join(s["cel"]["expression"] for s in c["spec"]["selectors"])
            self.assertIn(f'device.driver == "{DRA_DRIVER}"', exprs)
            if name != DRA_DRIVER:
                kind = name.split(".")[0]
                self.assertIn(f'device.attributes["{DRA_DRIVER}"].kind == "{kind}"', exprs)

    def test_slices_are_restricted_to_the_drivers_own_node(self):
        pol = one(self, self.objs, "ValidatingAdmissionPolicy", "hyperaccel-dra-driver-own-node-slices")
        binding = one(self, self.objs, "ValidatingAdmissionPolicyBinding", "hyperaccel-dra-driver-own-node-slices")
        self.assertEqual(binding["spec"]["policyName"], pol["metadata"]["name"])
        self.assertEqual(binding["spec"]["validationActions"], ["Deny"])
        rules = pol["spec"]["matchConstraints"]["resourceRules"]
        self.assertEqual({r for rule in rules for r in rule["resources"]}, {"resourceslices"})
        self.assertEqual({op for rule in rules for op in rule["operations"]}, {"CREATE", "UPDATE", "DELETE"})
        cond = " ".join(m["expression"] for m in pol["spec"]["matchConditions"])
        self.assertIn(f"system:serviceaccount:{NAMESPACE}:hyperaccel-dra-driver", cond)
        text = json.dumps(pol["spec"])
        self.assertIn("authentication.kubernetes.io/node-name", text)
        self.assertIn("spec.?nodeName", text)
        self.assertIn("oldObject", text)  # DELETE is checked against the object being deleted

    def test_volcano_allocates_claims(self):
        conf = scheduler_conf(self.objs)
        args = [p.get("arguments", {}) for t in conf["tiers"] for p in t["plugins"] if p["name"] == "predicates"]
        self.assertEqual(len(args), 1)
        self.assertIs(args[0].get("predicate.DynamicResourceAllocationEnable"), True)

    def test_examples_use_the_classes_and_their_claims(self):
        ex = render("examples/dra")
        classes = {c["metadata"]["name"] for c in find(self.objs, "DeviceClass")}
        templates = {t["metadata"]["name"] for t in find(ex, "ResourceClaimTemplate")}
        claims = {c["metadata"]["name"] for c in find(ex, "ResourceClaim")}
        for o in find(ex, "ResourceClaim") + find(ex, "ResourceClaimTemplate"):
            spec = o["spec"] if o["kind"] == "ResourceClaim" else o["spec"]["spec"]
            for r in spec["devices"]["requests"]:
                self.assertIn(r["exactly"]["deviceClassName"], classes)
        pods = 0
        for o in ex:
            if o["kind"] == "Pod":
                specs = [o["spec"]]
            elif o["kind"] == "Deployment":
                specs = [pod_spec(o)]
            elif o["kind"] == "Job":
                specs = [t["template"]["spec"] for t in o["spec"]["tasks"]]
                self.assertEqual(o["spec"]["networkTopology"]["mode"], "hard")
                self.assertEqual(o["spec"]["networkTopology"]["highestTierAllowed"], 1)
            else:
                continue
            for spec in specs:
                pods += 1
                declared = {rc["name"]: rc for rc in spec["resourceClaims"]}
                for rc in declared.values():
                    if "resourceClaimName" in rc:
                        self.assertIn(rc["resourceClaimName"], claims)
                    else:
                        self.assertIn(rc["resourceClaimTemplateName"], templates)
                for c in spec["containers"]:
                    for cl in c["resources"].get("claims", []):
                        self.assertIn(cl["name"], declared)
        self.assertEqual(pods, 3)



def main(argv):
    loader = unittest.TestLoader()
    module = sys.modules[__name__]
    if len(argv) > 1:
        suite = unittest.TestSuite(loader.loadTestsFromName(n, module) for n in argv[1:])
    else:
        suite = loader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        for _, reason in result.skipped[:1]:
            print(f"SKIPPED: {reason}")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
