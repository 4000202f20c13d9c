#!/usr/bin/env python3
"""Checks the Dockerfile, deploy/compose and deploy/k8s against the server they deploy.

No Docker engine or cluster is needed: every manifest is parsed and cross-checked against
`moeserve serve --help` (the built binary), the /metrics page of a freshly started server (metric
names and types), server/api/api_server.cc (health service name), the CI scripts, and each other. The flag sets the
manifests use are also run for real against a fixture model: the server must come up, answer
grpc.health.v1 (moeserve-cli --health, no API key) and /health, expose every metric the dashboard
and the HPA query, and exit 0 on SIGTERM.

  check_deploy.py --source ROOT --moeserve BIN --moeserve-cli BIN [unittest args]

Exit 77 (CTest SKIP_RETURN_CODE) when PyYAML is missing: pip install pyyaml
"""

import argparse
import copy
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    print("SKIP: PyYAML is not installed (pip install pyyaml)")
    sys.exit(77)

ARGS = None

# The server's last seconds after --shutdown-timeout: cancel in-flight calls and wait up to 5 s,
# then 1 s for final statuses (server/api/api_server.cc ApiServer::Shutdown), then engine stop.
SERVER_SHUTDOWN_TAIL_S = 10
CONTAINER_MODEL_DIR = "/models"
# Scripts CI runs besides its own closure: this test runs collect-runtime.sh on CI's build.
EXTRA_TESTED_SCRIPTS = {"deploy/docker/collect-runtime.sh"}


def src(*parts):
    return os.path.join(ARGS.source, *parts)


def read(*parts):
    with open(src(*parts), encoding="utf-8") as f:
        return f.read()


# ---- YAML ----------------------------------------------------------------------------------------

class ComposeLoader(yaml.SafeLoader):
    """SafeLoader plus Compose's `!reset` / `!override` merge tags."""


def _tagged(tag):
    def construct(loader, node):
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return {"__tag__": tag, "value": value}
    return construct


ComposeLoader.add_constructor("!reset", _tagged("!reset"))
ComposeLoader.add_constructor("!override", _tagged("!override"))


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=ComposeLoader) if d is not None]


def k8s_objects():
    """{relative path: [objects]} for every YAML file under deploy/k8s."""
    out = {}
    for path in sorted(glob.glob(src("deploy", "k8s", "**", "*.yaml"), recursive=True)):
        out[os.path.relpath(path, src("deploy", "k8s"))] = load_yaml_docs(path)
    return out


def find_kind(objects, kind, name=None):
    found = [o for docs in objects.values() for o in docs
             if isinstance(o, dict) and o.get("kind") == kind and o.get("apiVersion")
             and (name is None or o["metadata"]["name"] == name)]
    return found


# ---- moeserve serve --help -----------------------------------------------------------------------

_HELP = None


def serve_help():
    """{flag: takes_value} parsed from `moeserve serve --help`."""
    global _HELP
    if _HELP is None:
        _HELP = parse_help(subprocess.run([ARGS.moeserve, "serve", "--help"], check=True,
                                          capture_output=True, text=True).stdout)
    return _HELP


def cli_help():
    return parse_help(subprocess.run([ARGS.moeserve_cli, "--help"], check=True,
                                     capture_output=True, text=True).stdout)


def parse_help(text):
    flags = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(?:-\w,)?(--[a-z0-9][a-z0-9-]*)((?:,--[a-z0-9][a-z0-9-]*)*)(\s+(\S+))?", line)
        if m:
            kind = m.group(4) or ""
            # CLI11 prints a type (TEXT, INT, FLOAT, TEXT:FILE, INT:INT in [...]) for options, after
            # the option's aliases (--tensor-parallel-size,--tp INT).
            for name in [m.group(1)] + re.findall(r"--[a-z0-9][a-z0-9-]*", m.group(2)):
                flags[name] = bool(re.match(r"^[A-Z]+", kind))
    return flags


def parse_flags(testcase, args, where, help_flags=None):
    """Checks `args` (a moeserve serve argument list) against --help; returns {flag: value}."""
    help_flags = help_flags if help_flags is not None else serve_help()
    values = {}
    i = 0
    while i < len(args):
        arg = str(args[i])
        testcase.assertTrue(arg.startswith("--"), f"{where}: unexpected argument {arg!r}")
        name, eq, value = arg.partition("=")
        testcase.assertIn(name, help_flags, f"{where}: {name} is not a `moeserve serve` flag")
        testcase.assertNotIn(name, values, f"{where}: {name} given twice")
        if help_flags[name]:
            if not eq:
                i += 1
                testcase.assertLess(i, len(args), f"{where}: {name} needs a value")
                value = str(args[i])
            values[name] = value
        else:
            testcase.assertFalse(eq, f"{where}: {name} is a flag without a value")
            values[name] = True
        i += 1
    return values


_METRICS_PAGE = None


def live_metrics_page():
    """/metrics of a freshly started `moeserve serve` on the default model (a DeepSeek-V3 MoE, so
    the MoE-only series are there too), fetched once per run."""
    global _METRICS_PAGE
    if _METRICS_PAGE is None:
        metrics_port = free_port()
        proc = subprocess.Popen(
            [ARGS.moeserve, "serve", "--model", src("models", "default"), "--host", "127.0.0.1",
             "--port", "0", "--http-port", "0", "--metrics-port", str(metrics_port),
             "--kv-cache-mib", "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            status, page = None, ""
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None and status != 200:
                try:
                    status, _ = http_get(metrics_port, "/health")
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(0.2)
            if status == 200:
                status, page = http_get(metrics_port, "/metrics")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        if status != 200:
            raise RuntimeError(f"no /metrics from a fresh server (HTTP {status}):\n{err}")
        _METRICS_PAGE = page
    return _METRICS_PAGE


def metric_families(page):
    """{family: type} from a Prometheus text page's # TYPE lines."""
    return dict(re.findall(r"^# TYPE (moeserve_[a-z0-9_]+) (\w+)$", page, re.M))


def metric_names():
    """Every series name moeserve exports (a histogram's samples are its _bucket, _sum and _count),
    and its histograms, as a fresh server lists them."""
    page = live_metrics_page()
    series = set(re.findall(r"^(moeserve_[a-z0-9_]+)", page, re.M))
    histograms = {f for f, t in metric_families(page).items() if t == "histogram"}
    return series, histograms


def health_service_name():
    m = re.search(r'kServiceName\[\]\s*=\s*"([^"]+)"', read("server", "api", "api_server.cc"))
    return m.group(1)


class MetricsPageTest(unittest.TestCase):
    """The live page every series check reads: each family has # HELP and # TYPE, each sample
    belongs to one family, histograms have their buckets up to +Inf, counters end in _total."""

    def test_families_and_samples(self):
        page = live_metrics_page()
        families = metric_families(page)
        self.assertGreater(len(families), 10)
        self.assertEqual(set(re.findall(r"^# HELP (moeserve_[a-z0-9_]+) \S", page, re.M)), set(families))
        samples = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}
        for family, kind in families.items():
            self.assertIn(kind, samples, family)
            if kind == "counter":
                self.assertTrue(family.endswith("_total"), family)
        series, histograms = metric_names()
        for name in series:
            owners = [f for f, kind in families.items() if any(name == f + s for s in samples[kind])]
            self.assertEqual(len(owners), 1, f"{name} belongs to {owners}")
        self.assertTrue(histograms)
        for h in histograms:
            self.assertLessEqual({h + "_bucket", h + "_sum", h + "_count"}, series)
            self.assertIn(f'{h}_bucket{{le="+Inf"}} ', page)


# ---- Dockerfile ----------------------------------------------------------------------------------

class Dockerfile:
    def __init__(self, text):
        self.args = {}  # global ARG defaults
        self.stages = []  # [{"name", "base", "instructions": [(op, rest)]}]
        logical = []
        buf = ""
        for line in text.splitlines():
            stripped = line.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if buf and stripped.startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                buf += line.rstrip()[:-1] + " "
                continue
            logical.append(buf + line)
            buf = ""
        for line in logical:
            op, _, rest = line.strip().partition(" ")
            op = op.upper()
            rest = rest.strip()
            if op == "FROM":
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
                self.stages.append({"name": m.group(2), "base": m.group(1), "instructions": []})
            elif not self.stages and op == "ARG":
                k, _, v = rest.partition("=")
                self.args[k] = v
            else:
                self.stages[-1]["instructions"].append((op, rest))

    def stage(self, name):
        for s in self.stages:
            if s["name"] == name:
                return s
        raise KeyError(name)

    @staticmethod
    def exec_form(rest):
        return json.loads(rest) if rest.startswith("[") else shlex.split(rest)

    def ops(self, stage, op):
        return [rest for o, rest in stage["instructions"] if o == op]

    def base(self, stage):
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args.get(m.group(1), m.group(0)), stage["base"])


def shell_commands(script):
    """The programs a RUN's shell line starts (first word of each simple command)."""
    script = re.sub(r"--mount=\S+", "", script)
    commands = []
    for part in re.split(r"&&|\|\||;|\||\bthen\b|\bdo\b|\belse\b", script):
        words = shlex.split(part, posix=True)
        while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        while words and words[0] in ("if", "!", "fi", "done", "exec", "then", "else"):
            words.pop(0)
        if words:
            commands.append(words)
    return commands


def ci_scripts():
    """Scripts CI runs: the closure of script references from .ci/run."""
    seen = set()
    todo = [".ci/run"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for ref in re.findall(r"scripts/[A-Za-z0-9_.-]+\.sh", read(path)):
            todo.append(ref)
    return seen


def dockerignore_excluded(patterns, path):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    def to_regex(p):
        out = ""
        i = 0
        while i < len(p):
            if p[i:i + 2] == "**":
                out += ".*"
                i += 2
            elif p[i] == "*":
                out += "[^/]*"
                i += 1
            elif p[i] == "?":
                out += "[^/]"
                i += 1
            else:
                out += re.escape(p[i])
                i += 1
        return re.compile("^" + out + "$")
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for p in patterns:
        negate = p.startswith("!")
        rx = to_regex(p.lstrip("!").strip("/"))
        if any(rx.match(x) for x in prefixes):
            excluded = not negate
    return excluded


def dockerignore_patterns():
    return [ln.strip() for ln in read(".dockerignore").splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


RUNTIME_STAGES = ("runtime", "runtime-cpu")


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.df = Dockerfile(read("Dockerfile"))

    def runtime_cmd(self, stage):
        entry = Dockerfile.exec_form(self.df.ops(stage, "ENTRYPOINT")[-1])
        cmd = Dockerfile.exec_form(self.df.ops(stage, "CMD")[-1])
        return entry, cmd

    def test_stages(self):
        names = [s["name"] for s in self.df.stages]
        for n in ("build", "build-cpu") + RUNTIME_STAGES:
            self.assertIn(n, names)
        self.assertEqual(names[-1], "runtime", "the default target (last stage) is the CUDA runtime")
        self.assertRegex(self.df.base(self.df.stage("build")), r"^nvidia/cuda:.*-devel-ubuntu")
        self.assertRegex(self.df.base(self.df.stage("runtime")), r"^nvidia/cuda:.*-runtime-ubuntu")
        self.assertNotIn("cuda", self.df.base(self.df.stage("runtime-cpu")))
        self.assertNotIn("cuda", self.df.base(self.df.stage("build-cpu")))
        # Same CUDA version and distribution in the devel and runtime images.
        self.assertEqual(self.df.base(self.df.stage("build")).replace("-devel-", "-runtime-"),
                         self.df.base(self.df.stage("runtime")))

    def test_cuda_architectures_build_arg(self):
        build = self.df.stage("build")
        self.assertTrue(any(a.startswith("CUDA_ARCHS") for a in self.df.ops(build, "ARG")))
        runs = " ".join(self.df.ops(build, "RUN"))
        self.assertIn('-DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS}"', runs)
        self.assertIn("-DMOESERVE_CUDA=ON", runs)
        self.assertIn("-DMOESERVE_CUDA=OFF", " ".join(self.df.ops(self.df.stage("build-cpu"), "RUN")))

    def test_build_stages_run_only_ci_scripts(self):
        allowed = ci_scripts() | EXTRA_TESTED_SCRIPTS
        cmake_options = set(re.findall(r"(?:option|set)\((MOESERVE_[A-Z_]+)", read("CMakeLists.txt")))
        for name in ("build", "build-cpu"):
            stage = self.df.stage(name)
            used = []
            for run in self.df.ops(stage, "RUN"):
                for words in shell_commands(run):
                    prog = words[0].lstrip("./")
                    self.assertIn(prog, allowed,
                                  f"stage {name} runs {words[0]!r}, which CI does not run "
                                  f"(CI runs {sorted(allowed)})")
                    used.append(prog)
                for opt in re.findall(r"-D(MOESERVE_[A-Z_]+)=", run):
                    self.assertIn(opt, cmake_options, f"stage {name}: unknown CMake option {opt}")
            self.assertIn("scripts/install-deps.sh", used)
            self.assertIn("scripts/build.sh", used)
            self.assertIn("deploy/docker/collect-runtime.sh", used)
        self.assertIn("scripts/build.sh", ci_scripts())
        self.assertIn("scripts/install-deps.sh", ci_scripts())

    def test_runtime_stages(self):
        help_flags = serve_help()
        cli_flags = cli_help()
        for name in RUNTIME_STAGES:
            with self.subTest(stage=name):
                stage = self.df.stage(name)
                entry, cmd = self.runtime_cmd(stage)
                self.assertEqual(entry, ["moeserve", "serve"])
                flags = parse_flags(self, cmd, f"Dockerfile {name} CMD", help_flags)
                self.assertEqual(flags["--model"], CONTAINER_MODEL_DIR)
                self.assertEqual(flags["--host"], "0.0.0.0")
                self.assertEqual(flags["--device"], "auto" if name == "runtime" else "cpu")
                exposed = {p.split("/")[0] for e in self.df.ops(stage, "EXPOSE") for p in e.split()}
                self.assertEqual(exposed, {flags["--port"], flags["--http-port"], flags["--metrics-port"]})
                self.assertEqual(self.df.ops(stage, "STOPSIGNAL"), ["SIGTERM"])
                # Non-root, numerically (so Kubernetes' runAsNonRoot can verify it).
                user = self.df.ops(stage, "USER")[-1]
                self.assertRegex(user, r"^[1-9][0-9]*(:[1-9][0-9]*)?$")
                # HEALTHCHECK: moeserve-cli --health against the gRPC port.
                hc = self.df.ops(stage, "HEALTHCHECK")[-1]
                m = re.search(r"CMD\s+(\[.*\])", hc)
                hc_cmd = json.loads(m.group(1))
                self.assertEqual(hc_cmd[0], "moeserve-cli")
                self.assertIn("--health", hc_cmd)
                hc_flags = {}
                i = 1
                while i < len(hc_cmd):
                    self.assertIn(hc_cmd[i], cli_flags, f"moeserve-cli has no {hc_cmd[i]}")
                    if cli_flags[hc_cmd[i]]:
                        hc_flags[hc_cmd[i]] = hc_cmd[i + 1]
                        i += 1
                    i += 1
                self.assertEqual(hc_flags["--addr"], f"127.0.0.1:{flags['--port']}")
                timeout = float(re.search(r"--timeout=(\d+)s", hc).group(1))
                self.assertLess(float(hc_flags.get("--timeout", 5)), timeout)
                # Only binaries + libraries from the build, and the default model at /models.
                copies = self.df.ops(stage, "COPY")
                from_build = [c for c in copies if c.startswith("--from=")]
                self.assertEqual(sorted(c.split()[1] for c in from_build), ["/out/bin/", "/out/lib/"])
                local = [c.split() for c in copies if not c.startswith("--")]
                self.assertEqual(local, [["models/default/", CONTAINER_MODEL_DIR + "/"]])
                # No package manager or toolchain in the runtime image.
                for run in self.df.ops(stage, "RUN"):
                    for words in shell_commands(run):
                        self.assertNotIn(words[0], ("apt-get", "apt", "cmake", "gcc", "g++", "nvcc",
                                                    "pip", "curl", "wget"))

    def test_dockerignore(self):
        patterns = dockerignore_patterns()
        needed = ["CMakeLists.txt", "cmake/moeserve.cmake", "scripts/install-deps.sh",
                  "scripts/build.sh", "server/cli/main.cc", "proto", "clients/cli/main.cc",
                  "cuda/CMakeLists.txt", "deploy/docker/collect-runtime.sh",
                  "models/default/config.json", "models/default/tokenizer.json"]
        for stage in self.df.stages:
            for c in self.df.ops(stage, "COPY"):
                if not c.startswith("--"):
                    needed.append(c.split()[0].rstrip("/") if c.split()[0] != "." else "server")
        for p in needed:
            self.assertFalse(dockerignore_excluded(patterns, p), f".dockerignore excludes {p}")
        for p in [".git/HEAD", "build/bin/moeserve", "build-api/CMakeCache.txt",
                  "models/deepseek-v3/model.safetensors", "tools/distill/work/x",
                  "server/__pycache__/x.pyc", "deploy/k8s/deployment.yaml"]:
            self.assertTrue(dockerignore_excluded(patterns, p), f".dockerignore lets {p} in")


class CollectRuntimeTest(unittest.TestCase):
    """Runs the Dockerfile's collect step on this build, as the image build would."""

    def test_collect(self):
        bin_dir = os.path.dirname(os.path.abspath(ARGS.moeserve))
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([src("deploy", "docker", "collect-runtime.sh"), bin_dir, out], check=True)
            bins = set(os.listdir(os.path.join(out, "bin")))
            self.assertTrue({"moeserve", "moeserve-cli"} <= bins, bins)
            libs = set(os.listdir(os.path.join(out, "lib"))) - {"MANIFEST"}
            with open(os.path.join(out, "lib", "MANIFEST")) as f:
                self.assertEqual(set(f.read().split()), libs)
            for lib in libs:
                self.assertNotRegex(lib, r"^(libc|libcuda|ld-linux)\.so", "never copy glibc or the driver")
            # Every library ldd resolves is either copied or one the base images provide.
            ldd = subprocess.run(["ldd"] + [os.path.join(out, "bin", b) for b in sorted(bins)],
                                 check=True, capture_output=True, text=True).stdout
            base = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libmvec|libpthread|libdl|librt|"
                              r"libresolv|libutil|libanl|libgcc_s|libstdc\+\+|libcuda|libnvidia-|"
                              r"libcudart|libcublas|libcublasLt|libcufft|libcurand|libcusparse|"
                              r"libcusolver|libnvrtc|libnvJitLink|libnccl)")
            for m in re.finditer(r"^\s*(\S+) => (/\S+)", ldd, re.M):
                if not base.match(m.group(1)):
                    self.assertIn(m.group(1), libs)
            env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(out, "lib"))
            r = subprocess.run([os.path.join(out, "bin", "moeserve"), "serve", "--help"], env=env,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            print(f"\ncollect-runtime: {len(bins)} binaries, {len(libs)} libraries", file=sys.stderr)


# ---- Kubernetes ----------------------------------------------------------------------------------

def strategic_merge(base, patch, key=None):
    """The subset of kubectl's strategic merge patch the overlays use."""
    if isinstance(patch, dict) and isinstance(base, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = strategic_merge(out[k], v, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    merge_keys = {"containers": "name", "volumes": "name", "volumeMounts": "mountPath",
                  "ports": "containerPort", "env": "name"}
    if isinstance(patch, list) and isinstance(base, list) and key in merge_keys:
        mk = merge_keys[key]
        out = copy.deepcopy(base)
        for item in patch:
            for i, existing in enumerate(out):
                if existing.get(mk) == item.get(mk):
                    out[i] = strategic_merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


class K8sTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects = k8s_objects()
        cls.df = Dockerfile(read("Dockerfile"))
        cls.series, _ = metric_names()
        dep = find_kind(cls.objects, "Deployment", "moeserve")
        cls.deployments = {"base": [d for d in dep if "replicas" in d["spec"]][0]}
        # Overlays: kustomization.yaml with patches on ../..
        for kpath, docs in cls.objects.items():
            if kpath.startswith("overlays/") and kpath.endswith("kustomization.yaml"):
                d = os.path.dirname(kpath)
                merged = cls.deployments["base"]
                for p in docs[0].get("patches", []):
                    patch = load_yaml_docs(src("deploy", "k8s", d, p["path"]))[0]
                    if patch["kind"] == "Deployment":
                        merged = strategic_merge(merged, patch)
                cls.deployments[d] = merged

    def container(self, dep):
        return [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "moeserve"][0]

    def flags(self, dep, where):
        return parse_flags(self, self.container(dep)["args"], where)

    def test_kustomization_resources_exist(self):
        k = self.objects["kustomization.yaml"][0]
        for r in k["resources"]:
            self.assertTrue(os.path.exists(src("deploy", "k8s", r)), r)
        optional = {"secret.yaml", "servicemonitor.yaml", "hpa.yaml", "prometheus-adapter-rules.yaml"}
        top = {p for p in self.objects if "/" not in p} - {"kustomization.yaml"}
        self.assertEqual(top - set(k["resources"]), optional)

    def test_deployment_flags_ports_and_probes(self):
        service = health_service_name()
        for variant, dep in self.deployments.items():
            with self.subTest(variant=variant):
                c = self.container(dep)
                flags = self.flags(dep, f"k8s {variant} args")
                self.assertEqual(flags["--host"], "0.0.0.0")
                self.assertEqual(flags["--model"], CONTAINER_MODEL_DIR)
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                self.assertEqual(ports["grpc"], int(flags["--port"]))
                self.assertEqual(ports["http"], int(flags["--http-port"]))
                self.assertEqual(ports["metrics"], int(flags["--metrics-port"]))
                tls = "--tls-cert" in flags
                for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                    probe = c[probe_name]
                    handlers = [h for h in ("grpc", "httpGet", "tcpSocket", "exec") if h in probe]
                    self.assertEqual(len(handlers), 1, f"{probe_name}: {handlers}")
                    if tls:
                        # The kubelet's gRPC probe has no TLS, and with TLS the HTTP port needs it
                        # (or a client certificate): plain HTTP /health on the metrics port.
                        self.assertEqual(handlers, ["httpGet"], f"{probe_name} with TLS")
                    if "grpc" in probe:
                        self.assertEqual(probe["grpc"]["port"], int(flags["--port"]))
                        self.assertIn(probe["grpc"].get("service", ""), ("", service))
                    else:
                        h = probe["httpGet"]
                        self.assertEqual(h["path"], "/health")
                        self.assertEqual(h.get("scheme", "HTTP"), "HTTP")
                        port = ports.get(h["port"], h["port"])
                        allowed = {int(flags["--metrics-port"])}
                        if not tls:
                            allowed.add(int(flags["--http-port"]))
                        self.assertIn(port, allowed, f"{variant} {probe_name}")
                # Readiness must follow draining: grpc.health.v1 or /health both turn NOT_SERVING.
                self.assertGreaterEqual(c["startupProbe"]["periodSeconds"] *
                                        c["startupProbe"]["failureThreshold"], 600,
                                        "allow model loading minutes before liveness counts")

    def test_resources(self):
        for variant, dep in self.deployments.items():
            res = self.container(dep)["resources"]
            for r in ("cpu", "memory", "nvidia.com/gpu"):
                self.assertIn(r, res["requests"], f"{variant}: request {r}")
            self.assertEqual(res["limits"]["nvidia.com/gpu"], res["requests"]["nvidia.com/gpu"])
            self.assertGreaterEqual(int(res["requests"]["nvidia.com/gpu"]), 1)
            self.assertIn("memory", res["limits"])
            flags = self.flags(dep, variant)
            self.assertEqual(flags["--device"], "cuda")

    def test_security_context(self):
        user = self.df.ops(self.df.stage("runtime"), "USER")[-1]
        uid = int(user.split(":")[0])
        for variant, dep in self.deployments.items():
            pod = dep["spec"]["template"]["spec"]
            psc = pod["securityContext"]
            csc = self.container(dep)["securityContext"]
            self.assertTrue(psc["runAsNonRoot"])
            self.assertEqual(psc["runAsUser"], uid, "same uid as the image's USER")
            self.assertNotEqual(psc["runAsUser"], 0)
            self.assertTrue(csc.get("runAsNonRoot", True))
            self.assertFalse(csc["allowPrivilegeEscalation"])
            self.assertTrue(csc["readOnlyRootFilesystem"])
            self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
            self.assertFalse(pod.get("automountServiceAccountToken", True))

    def test_grace_period_covers_drain(self):
        for variant, dep in self.deployments.items():
            pod = dep["spec"]["template"]["spec"]
            flags = self.flags(dep, variant)
            pre = self.container(dep)["lifecycle"]["preStop"]
            if "exec" in pre:
                self.assertEqual(pre["exec"]["command"][0], "sleep")
                pre_s = float(pre["exec"]["command"][1])
            else:
                pre_s = float(pre["sleep"]["seconds"])
            self.assertGreater(pre_s, 0, "preStop gives endpoints time to drop the pod")
            grace = pod["terminationGracePeriodSeconds"]
            self.assertGreaterEqual(grace, pre_s + float(flags["--shutdown-timeout"]) +
                                    SERVER_SHUTDOWN_TAIL_S, variant)

    def test_volumes_and_secrets(self):
        secrets = {s["metadata"]["name"]: s for s in find_kind(self.objects, "Secret")}
        pvcs = {p["metadata"]["name"]: p for p in find_kind(self.objects, "PersistentVolumeClaim")}
        for variant, dep in self.deployments.items():
            pod = dep["spec"]["template"]["spec"]
            c = self.container(dep)
            flags = self.flags(dep, variant)
            volumes = {v["name"]: v for v in pod["volumes"]}
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            model = mounts[CONTAINER_MODEL_DIR]
            self.assertTrue(model["readOnly"])
            mv = volumes[model["name"]]
            claim = mv["persistentVolumeClaim"]
            self.assertTrue(claim["readOnly"])
            self.assertIn("ReadOnlyMany", pvcs[claim["claimName"]]["spec"]["accessModes"])
            # Every file flag points into a read-only Secret volume holding that key.
            for flag in ("--api-key-file", "--tls-cert", "--tls-key", "--tls-client-ca"):
                if flag not in flags:
                    continue
                path = flags[flag]
                mount = mounts[os.path.dirname(path)]
                self.assertTrue(mount["readOnly"])
                secret = secrets[volumes[mount["name"]]["secret"]["secretName"]]
                data = dict(secret.get("stringData", {}), **secret.get("data", {}))
                self.assertIn(os.path.basename(path), data, f"{flag}: {path}")
            self.assertIn("--api-key-file", flags, "the cluster deployment requires API keys")
            self.assertNotIn("--api-key", flags, "keys belong in a Secret file, not in args")

    def test_services_pdb_monitoring(self):
        dep = self.deployments["base"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        c = self.container(dep)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        flags = self.flags(dep, "base")
        self.assertEqual(dep["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        services = {s["metadata"]["name"]: s for s in find_kind(self.objects, "Service")}
        self.assertEqual(set(services), {"moeserve", "moeserve-headless"})
        self.assertEqual(services["moeserve-headless"]["spec"]["clusterIP"], "None")
        for s in services.values():
            self.assertEqual(s["spec"]["selector"].items() - labels.items(), set())
            for p in s["spec"]["ports"]:
                self.assertIn(p["targetPort"], ports)
                self.assertEqual(p["port"], ports[p["targetPort"]], "same port numbers everywhere")
            self.assertLessEqual({"grpc", "http"}, {p["name"] for p in s["spec"]["ports"]})
        pdb = find_kind(self.objects, "PodDisruptionBudget")[0]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        self.assertLess(int(pdb["spec"].get("maxUnavailable", 1)), dep["spec"]["replicas"])
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["prometheus.io/scrape"], "true")
        self.assertEqual(int(ann["prometheus.io/port"]), int(flags["--metrics-port"]))
        self.assertEqual(ann["prometheus.io/path"], "/metrics")
        sm = find_kind(self.objects, "ServiceMonitor")[0]
        svc_ports = {p["name"]: p for p in services["moeserve"]["spec"]["ports"]}
        self.assertEqual(sm["spec"]["selector"]["matchLabels"].items() -
                         services["moeserve"]["metadata"]["labels"].items(), set())
        for e in sm["spec"]["endpoints"]:
            self.assertEqual(svc_ports[e["port"]]["targetPort"], "metrics")
            self.assertEqual(e["path"], "/metrics")

    def test_hpa_on_queue_length(self):
        hpa = find_kind(self.objects, "HorizontalPodAutoscaler")[0]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "moeserve")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment")
        names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        self.assertIn("moeserve_requests_waiting", names)
        for n in names:
            self.assertIn(n, self.series)
        rules = self.objects["prometheus-adapter-rules.yaml"][0]["rules"]["custom"]
        exposed = {r["name"]["as"] for r in rules}
        self.assertTrue(set(names) <= exposed)
        for r in rules:
            self.assertIn(re.match(r"(\w+)", r["seriesQuery"]).group(1), self.series)
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)


# ---- Inference gateway ---------------------------------------------------------------------------

# The endpoint picker's flags before its engineConfigs setting, and the spec each one replaces.
EPP_LEGACY_FLAGS = {"--total-queued-requests-metric": "queuedRequestsSpec",
                    "--total-running-requests-metric": "runningRequestsSpec",
                    "--kv-cache-usage-percentage-metric": "kvUsageSpec",
                    "--cache-info-metric": "cacheInfoSpec"}


def gateway_values():
    return load_yaml_docs(src("deploy", "k8s", "gateway", "inferencepool-values.yaml"))[0]


def gateway_epp_config(values):
    """The EndpointPickerConfig the values give the chart's EPP."""
    ext = values["inferenceExtension"]
    return yaml.safe_load(ext["pluginsCustomConfig"][ext["pluginsConfigFile"]])


def gateway_engine(epp):
    """The metric specs of the engine entry the EPP applies to moeserve's pods."""
    params = [p for p in epp["plugins"] if p["type"] == "core-metrics-extractor"][0]["parameters"]
    return {e["name"]: e for e in params["engineConfigs"]}[params["defaultEngine"]]


def check_gateway_series(testcase, page, where):
    """What the EPP reads, on a live /metrics page: each named series, the KV cache usage a
    fraction, and the cache layout as the EPP's default labels of an info gauge."""
    engine = gateway_engine(gateway_epp_config(gateway_values()))

    def gauge(name):
        m = re.search(rf"^{re.escape(name)} (\S+)$", page, re.M)
        testcase.assertIsNotNone(m, f"{where}: no {name}")
        return float(m.group(1))

    testcase.assertGreaterEqual(gauge(engine["queuedRequestsSpec"]), 0)
    testcase.assertGreaterEqual(gauge(engine["runningRequestsSpec"]), 0)
    usage = gauge(engine["kvUsageSpec"])
    testcase.assertTrue(0 <= usage <= 1, f"{where}: KV cache usage {usage} is not a fraction")
    info = re.escape(engine["cacheInfoSpec"])
    m = re.search(rf'^{info}\{{block_size="(\d+)",num_gpu_blocks="(\d+)"\}} 1$', page, re.M)
    testcase.assertIsNotNone(m, f"{where}: no cache config info with block_size and num_gpu_blocks")
    testcase.assertGreater(int(m.group(1)), 0)
    testcase.assertEqual(int(m.group(2)), gauge("moeserve_kv_cache_blocks_total"))


class GatewayTest(unittest.TestCase):
    """deploy/k8s/gateway: the inferencepool chart's values (the InferencePool and the EPP's
    configuration) and the HTTPRoute, against the Deployment and the series moeserve exports."""

    @classmethod
    def setUpClass(cls):
        cls.values = gateway_values()
        cls.epp = gateway_epp_config(cls.values)
        cls.series, _ = metric_names()
        objects = k8s_objects()
        cls.dep = [d for d in find_kind(objects, "Deployment", "moeserve") if "replicas" in d["spec"]][0]
        cls.routes = find_kind(objects, "HTTPRoute")

    def plugin(self, type_):
        found = [p for p in self.epp["plugins"] if p["type"] == type_]
        self.assertEqual(len(found), 1, type_)
        return found[0]

    def test_pool_selects_the_servers_http_port(self):
        c = [c for c in self.dep["spec"]["template"]["spec"]["containers"] if c["name"] == "moeserve"][0]
        flags = parse_flags(self, c["args"], "k8s args")
        pool = self.values["inferencePool"]
        self.assertEqual([p["number"] for p in pool["targetPorts"]], [int(flags["--http-port"])])
        self.assertEqual(pool.get("modelServerProtocol", "http"), "http")
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(pool["modelServers"]["matchLabels"], self.dep["spec"]["selector"]["matchLabels"])
        self.assertLessEqual(pool["modelServers"]["matchLabels"].items(), labels.items())

    def test_epp_reads_moeserves_series(self):
        self.assertEqual(self.epp["apiVersion"], "inference.networking.x-k8s.io/v1alpha1")
        self.assertEqual(self.epp["kind"], "EndpointPickerConfig")
        source = self.plugin("metrics-data-source").get("parameters", {})
        self.assertEqual(source.get("path", "/metrics"), "/metrics")
        self.assertEqual(source.get("scheme", "http"), "http", "the base Deployment serves plain HTTP")
        engine = gateway_engine(self.epp)
        # The protocol's semantics, not just existing names: the scheduler's queue and running
        # batch, the KV usage fraction, and the labelled cache layout.
        self.assertEqual(engine["queuedRequestsSpec"], "moeserve_requests_waiting")
        self.assertEqual(engine["runningRequestsSpec"], "moeserve_requests_running")
        self.assertEqual(engine["kvUsageSpec"], "moeserve_kv_cache_usage_ratio")
        self.assertEqual(engine["cacheInfoSpec"], "moeserve_cache_config_info")
        self.assertEqual(engine.get("loraSpec"), "", "no LoRA adapters: not scraped")
        for key in ("queuedRequestsSpec", "runningRequestsSpec", "kvUsageSpec", "cacheInfoSpec"):
            self.assertIn(engine[key], self.series, key)
        check_gateway_series(self, live_metrics_page(), "a fresh server")
        # Every profile's plugins are defined; the default profile scores queue, KV and prefix.
        names = {p.get("name", p["type"]) for p in self.epp["plugins"]}
        refs = set()
        for profile in self.epp["schedulingProfiles"]:
            for ref in profile["plugins"]:
                self.assertIn(ref["pluginRef"], names)
                refs.add(ref["pluginRef"])
        self.assertLessEqual({"queue-scorer", "kv-cache-utilization-scorer", "prefix-cache-scorer"}, refs)

    def test_readme_names_the_same_series_for_older_epps(self):
        readme = read("deploy", "README.md")
        engine = gateway_engine(self.epp)
        for flag, spec in EPP_LEGACY_FLAGS.items():
            self.assertIn(f"{flag}={engine[spec]}", readme)

    def test_route_targets_the_pool(self):
        values_text = read("deploy", "k8s", "gateway", "inferencepool-values.yaml")
        release = re.search(r"helm install (\S+)", values_text).group(1)
        self.assertIn(f"helm install {release}", read("deploy", "README.md"))
        self.assertEqual(len(self.routes), 1)
        route = self.routes[0]
        backends = [b for r in route["spec"]["rules"] for b in r["backendRefs"]]
        self.assertEqual(backends, [{"group": "inference.networking.k8s.io", "kind": "InferencePool",
                                     "name": release}])
        self.assertEqual(route["spec"]["parentRefs"][0]["kind"], "Gateway")
        paths = [m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]]
        self.assertEqual(paths, ["/v1/"])


# ---- Compose -------------------------------------------------------------------------------------

def expand_env(value):
    """${VAR:-default} with the defaults (the environment of the test is not the user's)."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def parse_duration(s):
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


class LeaderWorkerSetTest(unittest.TestCase):
    """deploy/k8s/lws: the multi-node tensor-parallel group (issue 15)."""

    @classmethod
    def setUpClass(cls):
        cls.lws = find_kind(k8s_objects(), "LeaderWorkerSet", "moeserve-tp")[0]
        cls.tmpl = cls.lws["spec"]["leaderWorkerTemplate"]

    def script(self, role):
        return self.tmpl[f"{role}Template"]["spec"]["containers"][0]["args"][0]

    def test_leader_runs_serve_under_mpirun_with_real_flags(self):
        script = self.script("leader")
        self.assertIn("exec mpirun --hostfile", script)
        serve = script[script.index("moeserve serve") + len("moeserve serve"):]
        serve = re.sub(r"\$\(\([^)]*\)\)", "16", serve.replace("\\\n", " "))
        flags = parse_flags(self, shlex.split(serve), "lws leader")
        self.assertEqual(flags["--tensor-parallel-size"], "16")
        self.assertEqual(flags["--device"], "cuda")
        self.assertEqual(self.tmpl["size"] * 8, 16, "2 pods x 8 GPUs")
        ports = {p["name"]: p["containerPort"] for p in self.tmpl["leaderTemplate"]["spec"]["containers"][0]["ports"]}
        self.assertEqual(int(flags["--http-port"]), ports["http"])
        self.assertEqual(int(flags["--port"]), ports["grpc"])

    def test_rendezvous_from_lws_environment_and_group_restart(self):
        script = self.script("leader")
        for var in ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE"):
            self.assertIn(var, script)
        self.assertEqual(self.tmpl["restartPolicy"], "RecreateGroupOnPodRestart")
        probe = self.tmpl["leaderTemplate"]["spec"]["containers"][0]["readinessProbe"]
        self.assertEqual(probe["httpGet"]["path"], "/health")
        self.assertTrue(os.access(src("deploy", "k8s", "lws", "ssh-setup.sh"), os.X_OK))
        self.assertEqual(subprocess.run(["bash", "-n", src("deploy", "k8s", "lws", "ssh-setup.sh")]).returncode, 0)


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_yaml_docs(src("deploy", "compose", "compose.yaml"))[0]
        cls.cpu = load_yaml_docs(src("deploy", "compose", "compose.cpu.yaml"))[0]
        cls.df = Dockerfile(read("Dockerfile"))
        cls.series, cls.histograms = metric_names()

    def test_server(self):
        s = self.compose["services"]["moeserve"]
        flags = parse_flags(self, s["command"], "compose command")
        self.assertEqual(flags["--model"], CONTAINER_MODEL_DIR)
        self.assertEqual(flags["--host"], "0.0.0.0")
        published = {}
        for p in s["ports"]:
            parts = expand_env(p).split(":")
            published[int(parts[-1])] = int(parts[-2])
        self.assertEqual(set(published),
                         {int(flags["--port"]), int(flags["--http-port"]), int(flags["--metrics-port"])})
        self.assertEqual(s["stop_signal"], "SIGTERM")
        self.assertGreaterEqual(parse_duration(s["stop_grace_period"]),
                                float(flags["--shutdown-timeout"]) + SERVER_SHUTDOWN_TAIL_S)
        self.assertEqual(s["user"], self.df.ops(self.df.stage("runtime"), "USER")[-1])
        self.assertTrue(s["read_only"])
        model = [v for v in s["volumes"] if v["target"] == CONTAINER_MODEL_DIR][0]
        self.assertTrue(model["read_only"])
        self.assertEqual(s["build"]["target"], "runtime")
        self.assertIn("CUDA_ARCHS", s["build"]["args"])
        self.assertEqual(os.path.normpath(os.path.join(src("deploy", "compose"), s["build"]["context"])),
                         os.path.normpath(ARGS.source))
        gpu = s["deploy"]["resources"]["reservations"]["devices"][0]
        self.assertEqual((gpu["driver"], gpu["capabilities"]), ("nvidia", ["gpu"]))
        # The CPU override: a real stage, no device reservation, --device cpu.
        c = self.cpu["services"]["moeserve"]
        self.df.stage(c["build"]["target"])
        self.assertEqual(c["deploy"]["__tag__"], "!reset")
        cflags = parse_flags(self, c["command"], "compose.cpu command")
        self.assertEqual(cflags["--device"], "cpu")
        self.assertEqual({k: v for k, v in cflags.items() if k != "--device"},
                         {k: v for k, v in flags.items() if k != "--device"})

    def test_ports_consistent_everywhere(self):
        flags = parse_flags(self, self.compose["services"]["moeserve"]["command"], "compose")
        docker = parse_flags(self, Dockerfile.exec_form(
            self.df.ops(self.df.stage("runtime"), "CMD")[-1]), "Dockerfile")
        k8s = K8sTest()
        K8sTest.setUpClass()
        kflags = parse_flags(self, k8s.container(K8sTest.deployments["base"])["args"], "k8s")
        for f in ("--port", "--http-port", "--metrics-port", "--host", "--model"):
            self.assertEqual(flags[f], docker[f], f)
            self.assertEqual(kflags[f], docker[f], f)
        # The README's examples publish the same ports.
        readme = read("deploy", "README.md")
        for p in (docker["--port"], docker["--http-port"], docker["--metrics-port"]):
            self.assertIn(f"{p}:{p}", readme)

    def test_prometheus_scrapes_server(self):
        flags = parse_flags(self, self.compose["services"]["moeserve"]["command"], "compose")
        prom = load_yaml_docs(src("deploy", "compose", "prometheus", "prometheus.yml"))[0]
        job = [j for j in prom["scrape_configs"] if j["job_name"] == "moeserve"][0]
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        self.assertEqual(targets, [f"moeserve:{flags['--metrics-port']}"])
        mounts = self.compose["services"]["prometheus"]["volumes"]
        self.assertIn("./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro", mounts)

    def test_grafana_dashboard(self):
        dash_path = src("deploy", "compose", "grafana", "dashboards", "moeserve.json")
        with open(dash_path) as f:
            dash = json.load(f)
        ds = load_yaml_docs(src("deploy", "compose", "grafana", "provisioning", "datasources",
                                "prometheus.yaml"))[0]["datasources"][0]
        provider = load_yaml_docs(src("deploy", "compose", "grafana", "provisioning", "dashboards",
                                      "moeserve.yaml"))[0]["providers"][0]
        g = self.compose["services"]["grafana"]
        self.assertIn(f"./grafana/dashboards:{provider['options']['path']}:ro", g["volumes"])
        self.assertEqual(ds["url"], "http://prometheus:9090")
        exprs = []
        titles = []
        for p in dash["panels"]:
            if p["type"] == "row":
                continue
            titles.append(p["title"])
            self.assertEqual(p["datasource"]["uid"], ds["uid"])
            for t in p["targets"]:
                exprs.append(t["expr"])
        for v in dash["templating"]["list"]:
            exprs.append(v["query"]["query"])
        used = set()
        for e in exprs:
            for name in re.findall(r"\b(moeserve_[a-z0-9_]+)", e):
                self.assertIn(name, self.series, f"the dashboard queries {name}, which moeserve does not export")
                used.add(name)
            for name in re.findall(r"\b(moeserve_[a-z0-9_]+)_bucket", e):
                self.assertIn(name, self.histograms)
                self.assertIn("histogram_quantile", e)
            for name in re.findall(r"rate\((moeserve_[a-z0-9_]+)", e):
                self.assertRegex(name, r"_(total|sum|count|bucket)$", "rate() only over counters")
        required = {
            "TTFT": "moeserve_time_to_first_token_seconds_bucket",
            "ITL": "moeserve_inter_token_latency_seconds_bucket",
            "throughput": "moeserve_generation_tokens_total",
            "queue": "moeserve_requests_waiting",
            "KV usage": "moeserve_kv_cache_blocks_used",
        }
        for what, metric in required.items():
            self.assertIn(metric, used, f"no {what} panel")
        self.assertIn("moeserve_kv_cache_blocks_total", used)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        print(f"\ndashboard: {len(titles)} panels, {len(exprs)} queries over {len(used)} series",
              file=sys.stderr)

    def test_docs_and_smoke_scripts(self):
        readme = read("deploy", "README.md")
        for name in re.findall(r"\b(moeserve_[a-z0-9_]+)", readme):
            self.assertIn(name, self.series | self.histograms, f"deploy/README.md names {name}")
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", readme):
            known = set(serve_help()) | set(cli_help())
            docker_flags = {"--gpus", "--target", "--build-arg", "--rm", "--init", "--stop-timeout",
                            "--name", "--profile", "--build", "--cert", "--key", "--from-file",
                            "--set", "--for", "--timeout", "--namespace", "--file", "--tail",
                            "--restart", "--env", "--health-cmd", "--cpu", "--network", "--port", "--dry-run", "--detach",
                            "--version"} | set(EPP_LEGACY_FLAGS)
            self.assertIn(flag, known | docker_flags, f"deploy/README.md uses unknown flag {flag}")
        for script in ("deploy/compose/smoke.sh", "deploy/k8s/smoke.sh"):
            path = src(script)
            self.assertTrue(os.access(path, os.X_OK), script)
            self.assertIn(script, readme)
            r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)


# ---- The flag sets, run for real -----------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class LiveServerTest(unittest.TestCase):
    """Starts `moeserve serve` with each deployment's flags (paths, ports and sizes adapted to
    this machine) and checks what the probes, Prometheus and the HPA rely on."""

    def adapt(self, args, tmp):
        out = []
        flags = parse_flags(self, args, "adapt")
        key_file = os.path.join(tmp, "api-keys")
        with open(key_file, "w") as f:
            f.write("# test\nlive-test-key\n")
        port, metrics_port, http_port = free_port(), free_port(), free_port()
        # The container's own default model (a DeepSeek-V3 MoE), so MoE-only series are exported too.
        repl = {"--model": os.path.join(ARGS.source, "models", "default"),
                "--host": "127.0.0.1", "--port": str(port), "--metrics-port": str(metrics_port),
                "--device": "auto", "--kv-cache-mib": "16", "--api-key-file": key_file,
                "--http-port": str(http_port)}
        for k, v in flags.items():
            if k in ("--tls-cert", "--tls-key", "--tls-client-ca", "--served-model-name"):
                continue
            v = repl.get(k, v)
            out += [k] if v is True else [f"{k}={v}"]
        if "--http-port" not in flags:
            out.append("--http-port=0")  # off: the default port may be taken by a parallel test
            http_port = None
        return out, port, metrics_port, http_port

    def run_server(self, where, args):
        series, _ = metric_names()
        with open(src("deploy", "compose", "grafana", "dashboards", "moeserve.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        wanted = set(re.findall(r"\b(moeserve_[a-z0-9_]+)", " ".join(exprs)))
        wanted.add("moeserve_requests_waiting")  # hpa.yaml
        self.assertGreater(len(wanted), 10)
        with tempfile.TemporaryDirectory() as tmp:
            argv, port, metrics_port, http_port = self.adapt(args, tmp)
            log = open(os.path.join(tmp, "log"), "w+")
            proc = subprocess.Popen([ARGS.moeserve, "serve"] + argv, stdout=log, stderr=log)
            try:
                deadline = time.time() + 60
                status = None
                while time.time() < deadline and proc.poll() is None:
                    try:
                        status, body = http_get(metrics_port, "/health")
                        if status == 200:
                            break
                    except (urllib.error.URLError, ConnectionError, OSError):
                        pass
                    time.sleep(0.2)
                log.seek(0)
                self.assertEqual(status, 200, f"{where}: /health never 200\n{log.read()}")
                self.assertEqual(body.strip(), "SERVING")
                # The gRPC health service answers without an API key (what the kubelet's probe and
                # the HEALTHCHECK do), while the API itself requires one.
                r = subprocess.run([ARGS.moeserve_cli, "--addr", f"127.0.0.1:{port}", "--health",
                                    "--timeout", "5"], capture_output=True, text=True)
                self.assertEqual((r.returncode, r.stdout.strip()), (0, "SERVING"), f"{where}: {r.stderr}")
                r = subprocess.run([ARGS.moeserve_cli, "--addr", f"127.0.0.1:{port}", "--model-info",
                                    "--timeout", "5"], capture_output=True, text=True)
                self.assertNotEqual(r.returncode, 0, f"{where}: API answered without a key")
                self.assertIn("UNAUTHENTICATED", r.stderr)
                status, metrics = http_get(metrics_port, "/metrics")
                self.assertEqual(status, 200)
                exported = set(re.findall(r"^(moeserve_[a-z0-9_]+)", metrics, re.M))
                self.assertEqual(exported, series, f"{where}: other series than a plain server's")
                self.assertTrue(wanted <= exported, wanted - exported)
                # The HTTP port serves the same page, which the inference gateway's EPP scrapes.
                self.assertIsNotNone(http_port, f"{where}: no --http-port")
                status, page = http_get(http_port, "/metrics")
                self.assertEqual(status, 200)
                check_gateway_series(self, page, where)
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=30)
                self.assertEqual(rc, 0, f"{where}: exit status after SIGTERM")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()

    def test_k8s_args(self):
        objects = k8s_objects()
        dep = [d for d in find_kind(objects, "Deployment", "moeserve") if "replicas" in d["spec"]][0]
        c = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "moeserve"][0]
        self.run_server("k8s", c["args"])

    def test_dockerfile_cmd(self):
        df = Dockerfile(read("Dockerfile"))
        for name in RUNTIME_STAGES:
            cmd = Dockerfile.exec_form(df.ops(df.stage(name), "CMD")[-1])
            self.run_server(f"Dockerfile {name}", cmd + ["--api-key-file=x"])

    def test_sigterm_as_pid1(self):
        """In Kubernetes (no init) moeserve is PID 1 of its PID namespace, where signals without a
        handler are dropped: SIGTERM must still drain and exit 0. Needs `unshare` (root)."""
        if subprocess.run(["unshare", "-fp", "--mount-proc", "true"], capture_output=True).returncode:
            self.skipTest("unshare -fp not permitted here")
        metrics_port = free_port()
        proc = subprocess.Popen(
            ["unshare", "-fp", "--mount-proc", ARGS.moeserve, "serve", "--model",
             os.path.join(ARGS.source, "tests", "fixtures", "models", "llama"), "--port", "0",
             "--http-port", "0", "--metrics-port", str(metrics_port), "--shutdown-timeout", "5",
             "--kv-cache-mib", "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            status = None
            while time.time() < deadline and proc.poll() is None and status != 200:
                try:
                    status, _ = http_get(metrics_port, "/health")
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(0.2)
            self.assertEqual(status, 200)
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                child = int(f.read().split()[0])
            with open(f"/proc/{child}/status") as f:
                nspid = re.search(r"^NSpid:\s+(.*)$", f.read(), re.M).group(1).split()
            self.assertEqual(nspid[-1], "1", "moeserve is PID 1 in its namespace")
            os.kill(child, signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 0, err)
            self.assertIn("received SIGTERM", err)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_compose_command(self):
        compose = load_yaml_docs(src("deploy", "compose", "compose.yaml"))[0]
        self.run_server("compose", compose["services"]["moeserve"]["command"] + ["--api-key-file=x"])


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--moeserve", required=True)
    parser.add_argument("--moeserve-cli", required=True)
    ARGS, rest = parser.parse_known_args()
    ARGS.source = os.path.abspath(ARGS.source)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
