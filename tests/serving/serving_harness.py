"""What every stage 08 test needs: the real `openai` package (installed into a venv in the build
folder when it is missing; exit 77 when that cannot be done), a server on 127.0.0.1 and a free
port, raw HTTP for what the client library hides, and the offline engine's tokens to compare.
Every wait is bounded; every server is stopped at the end."""
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "helpers"))
from pypi_venv import SKIP, ensure_packages  # noqa: E402


def ensure_openai(venv_dir):
    """Imports openai, or re-runs this script under a venv that has it (tests/helpers/pypi_venv.py)."""
    ensure_packages(venv_dir, ["openai"], ["openai"])


class Server:
    """stage08_serving on 127.0.0.1, port chosen by the server (--port 0), stopped on exit."""

    def __init__(self, binary, model, *flags, startup_s=60):
        self.proc = subprocess.Popen([binary, "--model", model, "--host", "127.0.0.1", "--port", "0", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + startup_s
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"FAIL: the server did not start: {line!r} {self.proc.stderr.read()}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"http://{self.host}:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise SystemExit("FAIL: the server did not stop within 20 s of SIGTERM")
        err = self.proc.stderr.read()
        if self.proc.returncode not in (0, -15):
            raise SystemExit(f"FAIL: the server exited with {self.proc.returncode}: {err}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, parsed JSON or text) over raw HTTP."""
        data = body if isinstance(body, (bytes, type(None))) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text

    def metrics(self):
        _, text = self.request("GET", "/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, timeout=20):
        """Waits until nothing runs or waits and no KV block is held; fails naming what is left."""
        deadline = time.time() + timeout
        m = {}
        while time.time() < deadline:
            m = self.metrics()
            if m["llm_requests_running"] == 0 and m["llm_requests_waiting"] == 0 and m["llm_kv_blocks_used"] == 0:
                return m
            time.sleep(0.05)
        raise SystemExit(f"FAIL: the engine is not idle after {timeout} s: running {m.get('llm_requests_running')}, "
                         f"waiting {m.get('llm_requests_waiting')}, KV blocks used {m.get('llm_kv_blocks_used')}")


def offline_tokens(stage03, model, prompt, max_new_tokens, chat=False, flags=()):
    """A stage's offline engine (stage 03's, or the executable given with its `flags`), greedy:
    (tokens, text) of one prompt."""
    cmd = [stage03, "--model", model, "--prompt", prompt, "--max-new-tokens", str(max_new_tokens), "--json",
           *flags]
    if chat:
        cmd.append("--chat")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    o = json.loads(out[out.index("{"):])["outputs"][0]
    return o["tokens"], o["text"]


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)
