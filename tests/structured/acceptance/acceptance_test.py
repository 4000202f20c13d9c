#!/usr/bin/env python3
"""Structured-output acceptance test against a real `moeserve serve` (gRPC, the Python client).

- JSON Schema: every schema of schemas.py (116) on the default model (greedy and sampled) and on a
  random-weight DeepSeek-V3-architecture model with DeepSeek-V3's 129k-token vocabulary (when
  ../shared/data has the tokenizer): every output that finishes validates with Python's
  `jsonschema` (formats checked, rfc3339-validator installed).
- Regex: outputs re.fullmatch their pattern.
- GBNF: the grammars of llama.cpp's grammars/ folder (from the llama-cpp-python sdist on PyPI,
  downloaded by this test) and this test's own parse; outputs are accepted by the `lark` package
  (Earley) on the grammar converted to lark syntax by gbnf_to_lark.py.
- Bad constraints (invalid JSON, a $ref cycle without base case, a 10 MB schema, a regex whose
  automaton explodes) get INVALID_ARGUMENT within seconds and the server keeps serving.

Installs what it uses into a virtual environment under --work (jsonschema, rfc3339-validator,
lark, grpcio, grpcio-tools); exits 77 (skipped) when PyPI cannot be reached.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PACKAGES = ["jsonschema==4.26.0", "rfc3339-validator", "lark", "grpcio", "grpcio-tools", "protobuf"]
LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"


def ensure_venv(work):
    """Re-executes this script inside a venv holding PACKAGES."""
    if os.environ.get("MOESERVE_ACCEPTANCE_VENV") == "1":
        return
    env_dir = os.path.join(work, "venv")
    python = os.path.join(env_dir, "bin", "python")
    marker = os.path.join(env_dir, "packages.txt")
    if not (os.path.exists(marker) and open(marker).read() == "\n".join(PACKAGES)):
        venv.create(env_dir, with_pip=True, clear=True)
        r = subprocess.run([python, "-m", "pip", "install", "-q", *PACKAGES])
        if r.returncode != 0:
            print("SKIP: cannot install the test's Python packages from PyPI", file=sys.stderr)
            sys.exit(77)
        open(marker, "w").write("\n".join(PACKAGES))
    env = dict(os.environ, MOESERVE_ACCEPTANCE_VENV="1")
    os.execve(python, [python, os.path.abspath(__file__), *sys.argv[1:]], env)


class Server:
    def __init__(self, moeserve, model, log_path):
        self.log_file = open(log_path, "w+")
        self.proc = subprocess.Popen([moeserve, "serve", "--model", model, "--port", "0", "--http-port", "0",
                                      "--metrics-port", "0", "--threads", "2"], stderr=self.log_file)
        deadline = time.time() + 120
        self.addr = None
        while time.time() < deadline and self.addr is None and self.proc.poll() is None:
            time.sleep(0.1)
            self.log_file.seek(0)
            m = re.search(r"serving on (127\.0\.0\.1:\d+)", self.log_file.read())
            if m:
                self.addr = m.group(1)
        if self.addr is None:
            self.log_file.seek(0)
            raise RuntimeError("server did not start:\n" + self.log_file.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)


class Results:
    def __init__(self):
        self.failures = []
        self.counts = {}

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n

    def fail(self, message):
        print("FAIL:", message, flush=True)
        self.failures.append(message)


def validator_for(name, schema):
    import jsonschema
    if isinstance(schema, dict) and schema.get("nullable"):  # OpenAPI: null is allowed too
        schema = {"anyOf": [schema, {"type": "null"}]}
    cls = (jsonschema.Draft7Validator if "draft7" in name else
           jsonschema.Draft4Validator if "draft4" in name else jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def generate(client, prompt, **kwargs):
    return client.generate_all(prompt, timeout=600, **kwargs)


def run_schemas(client, results, label, prompt, configs, max_tokens):
    """Every schema under every (temperature, n, seed) config; requests run 8 at a time so that
    the server batches them."""
    from concurrent.futures import ThreadPoolExecutor
    from schemas import SCHEMAS

    def one(item):
        name, schema, (temperature, n, seed) = item
        try:
            return name, schema, generate(client, prompt, json_schema=json.dumps(schema), temperature=temperature,
                                          n=n, seed=seed, max_tokens=max_tokens), None
        except Exception as e:  # noqa: BLE001
            return name, schema, [], e

    work = [(name, schema, config) for name, schema in SCHEMAS for config in configs]
    with ThreadPoolExecutor(8) as pool:
        for name, schema, outs, error in pool.map(one, work):
            if error is not None:
                results.fail(f"{label} {name}: request failed: {error}")
                continue
            validator = validator_for(name, schema)
            for c in outs:
                results.count(f"{label} outputs")
                if c.finish_reason != "stop":
                    continue
                results.count(f"{label} finished")
                try:
                    value = json.loads(c.text)
                except ValueError as e:
                    results.fail(f"{label} {name}: not JSON ({e}): {c.text!r}")
                    continue
                errors = [e.message for e in validator.iter_errors(value)]
                if errors:
                    results.fail(f"{label} {name}: {errors[0]} in {c.text!r}")


def run_regexes(client, results, prompt):
    from schemas import REGEXES
    for pattern in REGEXES:
        for temperature, seed in [(0.0, 1), (1.0, 2), (1.0, 3)]:
            for c in generate(client, prompt, regex=pattern, temperature=temperature, seed=seed, max_tokens=64):
                results.count("regex outputs")
                if c.finish_reason != "stop":
                    continue
                results.count("regex finished")
                if not re.fullmatch(pattern, c.text):
                    results.fail(f"regex {pattern!r}: {c.text!r} does not fullmatch")


OWN_GRAMMARS = {
    "own-sentence": 'root ::= word (" " word){0,5} [.!?]\nword ::= [A-Za-z]{1,8}\n',
    "own-expr": 'root ::= e\ne ::= t (("+" | "-" | "*") t){0,3}\nt ::= [0-9]{1,3} | "(" e ")"\n',
    "own-bullets": 'root ::= "- " [a-z ]{1,20} ("\\n- " [a-z ]{1,20}){0,2}\n',
    "own-csv": 'root ::= row ("\\n" row){0,3}\nrow ::= cell ("," cell){1,3}\ncell ::= [a-z0-9]{1,6} | "\\"" [^"\\n]{0,8} "\\""\n',
    "own-nested": 'root ::= list\nlist ::= "(" (item (" " item)*)? ")"\nitem ::= list | [a-z]+ | [0-9]{1,3}\n',
    "own-kv": 'root ::= pair (";" pair)*\npair ::= key "=" value\nkey ::= [a-z_]{1,8}\nvalue ::= "true" | "false" | [0-9]+ | "\'" [^\'\\\\]* "\'"\n',
}


def llama_cpp_grammars(work):
    """The grammars/*.gbnf of llama.cpp, vendored in the llama-cpp-python sdist (downloaded)."""
    dest = os.path.join(work, "llama_cpp_grammars")
    if os.path.isdir(dest) and os.listdir(dest):
        return {f: open(os.path.join(dest, f)).read() for f in sorted(os.listdir(dest))}
    # The same sdist, unpacked by bench/peers/build-llama-cpp.sh.
    peers = os.path.join(os.path.expanduser("~"), ".cache", "moeserve-peers", LLAMA_CPP_SDIST.replace("==", "-"),
                         "src", "vendor", "llama.cpp", "grammars")
    if os.path.isdir(peers):
        names = sorted(f for f in os.listdir(peers) if f.endswith(".gbnf"))
        if names:
            return {f: open(os.path.join(peers, f)).read() for f in names}
    tmp = tempfile.mkdtemp(dir=work)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
                        LLAMA_CPP_SDIST, "-d", tmp])
    if r.returncode != 0:
        return None
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(tmp):
        with tarfile.open(os.path.join(tmp, name)) as tar:
            for m in tar.getmembers():
                if re.search(r"/vendor/llama\.cpp/grammars/[^/]+\.gbnf$", m.name):
                    with open(os.path.join(dest, os.path.basename(m.name)), "wb") as out:
                        out.write(tar.extractfile(m).read())
    shutil.rmtree(tmp, ignore_errors=True)
    return {f: open(os.path.join(dest, f)).read() for f in sorted(os.listdir(dest))}


def run_grammars(client, results, prompt, grammars):
    from gbnf_to_lark import gbnf_to_lark
    import lark
    for name, text in grammars.items():
        try:
            parser = lark.Lark(gbnf_to_lark(text), start="start", parser="earley", lexer="dynamic")
        except Exception as e:  # noqa: BLE001
            results.fail(f"grammar {name}: the lark conversion does not load: {e}")
            continue
        for temperature, seed in [(0.0, 1), (1.0, 2), (1.0, 3), (1.0, 4)]:
            try:
                outs = generate(client, prompt, grammar=text, temperature=temperature, seed=seed, max_tokens=256)
            except Exception as e:  # noqa: BLE001
                results.fail(f"grammar {name}: request failed: {e}")
                break
            results.count("grammars compiled")
            for c in outs:
                results.count("grammar outputs")
                if c.finish_reason != "stop":
                    continue
                results.count("grammar finished")
                try:
                    parser.parse(c.text)
                except Exception as e:  # noqa: BLE001
                    results.fail(f"grammar {name}: lark rejects {c.text!r}: {str(e)[:200]}")


def run_bad_constraints(client, results, prompt):
    import grpc
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 100}
                                             for i in range(80000)}}
    cases = [
        ("invalid JSON", {"json_schema": '{"type": "object", "properties": '}),
        ("$ref cycle", {"json_schema": json.dumps({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"},
                                                                               "b": {"$ref": "#/$defs/a"}}})}),
        ("required recursion", {"json_schema": json.dumps({"type": "object", "properties": {"n": {"$ref": "#"}},
                                                           "required": ["n"]})}),
        ("10 MB schema", {"json_schema": json.dumps(huge)}),
        ("exploding regex", {"regex": "(a|b)*a(a|b){40}"}),
        ("backreference", {"regex": "(a)\\1"}),
        ("bad grammar", {"grammar": "root ::= \"a\" missing\n"}),
    ]
    for label, kwargs in cases:
        start = time.time()
        try:
            generate(client, prompt, max_tokens=8, **kwargs)
            results.fail(f"bad constraint {label}: accepted")
        except grpc.RpcError as e:
            elapsed = time.time() - start
            if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
                results.fail(f"bad constraint {label}: {e.code()} {e.details()}")
            elif elapsed > 20:
                results.fail(f"bad constraint {label}: took {elapsed:.1f} s")
            else:
                results.count("bad constraints refused")
                print(f"  {label}: INVALID_ARGUMENT in {elapsed:.2f} s: {e.details()[:120]}", flush=True)
    # Healthy afterwards.
    outs = generate(client, prompt, regex="[0-9]{2}", temperature=0.0, max_tokens=8)
    if outs[0].finish_reason != "stop" or not re.fullmatch("[0-9]{2}", outs[0].text):
        results.fail(f"server unhealthy after bad constraints: {outs[0]}")


def make_random_model(moeserve, work, data):
    tokenizer = os.path.join(data, "tokenizers", "deepseek_v3")
    if not os.path.exists(os.path.join(tokenizer, "tokenizer.json")):
        return None
    out = os.path.join(work, "random_v3_129k")
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        subprocess.run([moeserve, "make-model", "--config", os.path.join(HERE, "random_v3_129k.json"), "--out", out,
                        "--seed", "0", "--dtype", "bf16"], check=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer, f), out)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--moeserve", required=True)
    p.add_argument("--work", required=True, help="folder for the venv, downloads and models")
    p.add_argument("--data", default=os.environ.get("MOESERVE_TEST_DATA", os.path.join(ROOT, "..", "shared", "data")))
    p.add_argument("--quick", action="store_true", help="greedy + one sample per schema on the default model only")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ensure_venv(args.work)
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    os.environ.setdefault("MOESERVE_CLIENT_STUBS_DIR", os.path.join(args.work, "stubs"))
    from moeserve_client import Client

    results = Results()
    prompt = "Once upon a time"
    server = Server(args.moeserve, os.path.join(ROOT, "models", "default"), os.path.join(args.work, "server.log"))
    try:
        client = Client(server.addr)
        print("default model: JSON Schemas", flush=True)
        configs = [(0.0, 1, 1), (1.0, 1, 7)] if args.quick else [(0.0, 1, 1), (1.0, 2, 7)]
        run_schemas(client, results, "default", prompt, configs, max_tokens=200)
        print("default model: regexes", flush=True)
        run_regexes(client, results, prompt)
        print("default model: grammars", flush=True)
        grammars = dict(OWN_GRAMMARS)
        llama = llama_cpp_grammars(args.work)
        if llama is None:
            print("  (llama.cpp grammars not downloaded: PyPI unreachable)", flush=True)
        else:
            grammars.update({f"llama.cpp/{k}": v for k, v in llama.items()})
            results.count("llama.cpp grammars", len(llama))
        run_grammars(client, results, prompt, grammars)
        print("bad constraints", flush=True)
        run_bad_constraints(client, results, prompt)
    finally:
        server.stop()

    random_model = None if args.quick else make_random_model(args.moeserve, args.work, args.data)
    if random_model is not None:
        server = Server(args.moeserve, random_model, os.path.join(args.work, "server_random.log"))
        try:
            client = Client(server.addr)
            print("random-weight model, DeepSeek-V3 vocabulary: JSON Schemas", flush=True)
            run_schemas(client, results, "random-129k", prompt, [(0.0, 1, 1), (1.0, 1, 5)], max_tokens=160)
        finally:
            server.stop()

    for key in sorted(results.counts):
        print(f"  {key}: {results.counts[key]}")
    # Not vacuous: enough outputs finished for every kind.
    for key, minimum in [("default finished", 100), ("regex finished", 10), ("grammar finished", 10),
                         ("bad constraints refused", 7)]:
        if results.counts.get(key, 0) < minimum:
            results.fail(f"only {results.counts.get(key, 0)} {key} (expected >= {minimum})")
    passed = sum(v for k, v in results.counts.items() if k.endswith("finished"))
    print(f"{passed} passed, {len(results.failures)} failed")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
