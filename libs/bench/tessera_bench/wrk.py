"""Drive one request shape with wrk (a separate process, C, not the bottleneck)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tessera_bench.scenario import Request


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors


def ensure_wrk() -> str:
    """wrk from Debian's packages; installed on first use when we may (root)."""
    found = shutil.which("wrk")
    if found:
        return found
    import os

    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed for make bench: apt-get install wrk")
    return found


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def script_for(request: Request) -> str:
    lines = [f"wrk.method = {_lua_string(request.method)}"]
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if request.body is not None or request.lua_body is not None:
        lines.append('wrk.headers["content-type"] = wrk.headers["content-type"] or "application/json"')
    if request.body is not None:
        lines.append(f"wrk.body = {_lua_string(request.body)}")
    lines += [
        f"run = {_lua_string(secrets.token_hex(4))}",
        "local made = 0",
        "function setup(thread) made = made + 1; thread:set('tid', made) end",
        "counter = 0",
    ]
    if request.lua_body is not None:
        lines += [
            "function request()",
            "  counter = counter + 1",
            "  local unique = run .. 't' .. tostring(tid) .. 'n' .. tostring(counter)",
            f"  return wrk.format(nil, nil, nil, {request.lua_body})",
            "end",
        ]
    lines += [
        "function done(summary, latency, requests)",
        "  local errors = summary.errors.status + summary.errors.connect + summary.errors.read"
        " + summary.errors.write + summary.errors.timeout",
        "  io.write(string.format('RESULT {\"requests\": %d, \"duration_us\": %d, \"errors\": %d,"
        " \"p50_us\": %d, \"p99_us\": %d}\\n', summary.requests, summary.duration, errors,"
        " latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(url: str, request: Request, *, seconds: int, connections: int, threads: int = 2) -> Result:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "scenario.lua"
        script.write_text(script_for(request))
        completed = subprocess.run(
            [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
             "-s", str(script), url.rstrip("/") + request.path],
            capture_output=True, text=True, check=False,
        )
    line = next((l for l in completed.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {completed.stdout}\n{completed.stderr}")
    data = json.loads(line[len("RESULT "):])
    return Result(
        requests_per_second=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=data["errors"],
    )
