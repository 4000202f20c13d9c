"""Helpers for tests of `moeserve serve`'s OpenAI-compatible HTTP API: servers on free ports,
raw HTTP and SSE reads (byte-level checks the SDK hides), and /metrics parsing."""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def parse_args(*flags):
    """The test's flags (each required) plus MOESERVE_TEST_DATA as .data; the rest for unittest."""
    parser = argparse.ArgumentParser()
    for flag in flags:
        parser.add_argument(flag, required=True)
    args, rest = parser.parse_known_args()
    args.data = os.environ.get("MOESERVE_TEST_DATA",
                               os.path.join(args.source, "..", "shared", "data"))
    return args, rest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`moeserve serve` with gRPC and HTTP on free ports, stopped by stop() (SIGTERM)."""

    def __init__(self, moeserve, model, *extra, api_key=None, tls=None):
        self.stderr = tempfile.TemporaryFile()
        for _ in range(5):  # a free port may be taken before the server binds it
            self.http_port = free_port()
            argv = [moeserve, "serve", "--model", model, "--port", "0", "--http-port",
                    str(self.http_port), "--threads", "1", *extra]
            if api_key:
                argv += ["--api-key", api_key]
            if tls:
                argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
            self.stderr.seek(0)
            self.stderr.truncate()
            self.proc = subprocess.Popen(argv, stderr=self.stderr)
            self.grpc_port = None
            deadline = time.time() + 90
            while time.time() < deadline and self.proc.poll() is None:
                m = re.search(r"serving on 127\.0\.0\.1:(\d+).*OpenAI API on", self.log())
                if m:
                    self.grpc_port = int(m.group(1))
                    return
                time.sleep(0.05)
            if "cannot listen" not in self.log():
                break
            self.proc.wait(10)
        self.stop(signal.SIGKILL)
        raise RuntimeError("server did not start:\n" + self.log())

    @property
    def pid(self):
        return self.proc.pid

    def base_url(self, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.http_port}/v1"

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def threads(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def metrics(self):
        """{series (with labels): value} from /metrics."""
        status, _, body = request(self.http_port, "GET", "/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, timeout=30):
        """Waits until no request runs or waits and no KV block is held; returns the metrics."""
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            if (m["moeserve_kv_cache_blocks_used"] == 0 and m["moeserve_requests_running"] == 0
                    and m["moeserve_requests_waiting"] == 0) or time.time() > deadline:
                return m
            time.sleep(0.05)


def request(port, method, path, body=None, headers=None, timeout=60):
    """One HTTP request; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json"} if data is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    conn.close()
    return out


def sse_lines(port, path, body, headers=None):
    """A streamed response's raw SSE lines (comments included), and its HTTP headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    conn.request("POST", path, body=json.dumps(body).encode(), headers=h)
    r = conn.getresponse()
    raw = r.read().decode()
    conn.close()
    return raw, r.status, {k.lower(): v for k, v in r.getheaders()}


def parse_sse(raw):
    """SSE text -> list of data payloads (parsed JSON, or the string "[DONE]"); checks framing:
    every event is one `data: ...` line followed by a blank line, or a `:` comment."""
    assert raw.endswith("\n\n"), repr(raw[-40:])
    events = []
    for block in raw[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 1, f"one line per event: {block!r}"
        line = lines[0]
        if line.startswith(":"):
            continue
        assert line.startswith("data: "), repr(line)
        payload = line[len("data: "):]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def set_chat_template(model_dir, template_path):
    """Writes the chat template of `template_path` (a tokenizer_config.json or a .jinja file) into
    model_dir's tokenizer_config.json."""
    with open(template_path, encoding="utf-8") as f:
        template = json.load(f)["chat_template"] if template_path.endswith(".json") else f.read()
    cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["chat_template"] = template
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)


def chat_model_dir(source, template_path, tokenizer_config_dir=None):
    """models/default copied with a chat template (the tiny model has none)."""
    out = tempfile.mkdtemp(prefix="openai_chat_model")
    src = os.path.join(source, "models", "default")
    for name in os.listdir(src):
        shutil.copy(os.path.join(src, name), out)
    set_chat_template(out, template_path)
    return out
