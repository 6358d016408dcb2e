"""The baseline measured beside our client-credentials row: panva's oidc-provider 9 (the
engine inside Logto), bare — in memory, one Node process, a fresh ES384 key — answering the
very request our row sends (same Basic credentials, same form body).

The harness is `oidc_provider/` (package.json pinning an exact version, server.mjs). On first
use it is installed with the machine's npm into a cache folder outside the repository, keyed
by the package.json's content, with no lock file written. Without node or npm, or when the
install fails, `Unavailable` says why and the bench reports the row as skipped.

The cache is `$TESSERA_BENCH_CACHE`, else `$XDG_CACHE_HOME/tessera-bench`, else
`~/.cache/tessera-bench` (a CI job can keep that folder between runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HARNESS = Path(__file__).parent / "oidc_provider"
NAME = "bare oidc-provider 9 (in memory, ES384)"
INSTALL_SECONDS = 300
START_SECONDS = 30


class Unavailable(RuntimeError):
    """The baseline cannot run here; the message says why (for a "skipped" row)."""


@dataclass(frozen=True)
class BareProvider:
    url: str  # the origin; the provider is mounted at /oidc as ours
    pid: int
    versions: str  # "oidc-provider 9.13.3 on node v20.20.2"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/oidc/jwks"


def cache_root() -> Path:
    if os.environ.get("TESSERA_BENCH_CACHE"):
        return Path(os.environ["TESSERA_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tessera-bench"


def pinned_version() -> str:
    return json.loads((HARNESS / "package.json").read_text())["dependencies"]["oidc-provider"]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def install() -> Path:
    """The harness's server.mjs next to an installed node_modules (installing on first use);
    raises Unavailable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node:
        raise Unavailable("node is not on PATH")
    if not npm:
        raise Unavailable("npm is not on PATH")
    manifest = (HARNESS / "package.json").read_bytes()
    version = pinned_version()
    root = cache_root()
    target = root / f"oidc-provider-{version}-{_digest(manifest)}"
    if not _installed(target, version):
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="installing-", dir=root))
        except OSError as exc:
            raise Unavailable(f"cache folder {root} is not writable: {exc.strerror}") from None
        try:
            (staging / "package.json").write_bytes(manifest)
            try:
                done = subprocess.run(
                    [npm, "install", "--no-package-lock", "--no-audit", "--no-fund", "--omit=dev",
                     "--loglevel=error"],
                    cwd=staging, capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False)
            except subprocess.TimeoutExpired:
                raise Unavailable(f"npm install of oidc-provider {version} took over {INSTALL_SECONDS} s") from None
            if done.returncode != 0 or not _installed(staging, version):
                last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
                raise Unavailable(f"npm install of oidc-provider {version} failed: {last[0][:160]}")
            try:
                staging.rename(target)
            except OSError:
                if not _installed(target, version):  # not another run's install winning the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    # ESM resolves `oidc-provider` from the importing file's folder (NODE_PATH does not apply),
    # so server.mjs runs from a copy beside node_modules, named by its content.
    source = (HARNESS / "server.mjs").read_bytes()
    server = target / f"server-{_digest(source)}.mjs"
    if not server.exists():
        partial = target / f".{server.name}.{os.getpid()}"
        partial.write_bytes(source)
        partial.replace(server)
    return server


def _installed(folder: Path, version: str) -> bool:
    found = folder / "node_modules" / "oidc-provider" / "package.json"
    try:
        return json.loads(found.read_text()).get("version") == version
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def running(*, client_id: str, client_secret: str, resource: str, scope: str,
            port: int | None = None) -> Iterator[BareProvider]:
    """Start the harness on a free port and stop it afterwards; raises Unavailable."""
    from tessera_devstack.ports import free_port
    from tessera_devstack.processes import die_with_parent

    server = install()
    port = port or free_port()
    env = {**os.environ, "NODE_ENV": "production", "BARE_CLIENT_ID": client_id,
           "BARE_CLIENT_SECRET": client_secret, "BARE_RESOURCE": resource, "BARE_SCOPE": scope}
    with tempfile.TemporaryDirectory(prefix="tessera-bare-op-") as folder:
        log = Path(folder) / "node.log"
        # The child writes in append mode to its own descriptor; we read the file by name.
        with log.open("ab") as output:
            # Its own session, as each of our services and PostgreSQL and NATS have: with the
            # kernel's autogroup scheduling, a busy machine shares CPU per session, and in the
            # bench's session (with wrk) Node got a fraction of what each of ours got.
            process = subprocess.Popen([shutil.which("node") or "node", str(server), str(port)],
                                       cwd=server.parent, env=env, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       preexec_fn=die_with_parent(signal.SIGTERM))
        try:
            _wait_listening(process, log)
            node = subprocess.run([shutil.which("node") or "node", "--version"], capture_output=True,
                                  text=True, check=False).stdout.strip()
            yield BareProvider(url=f"http://127.0.0.1:{port}", pid=process.pid,
                               versions=f"oidc-provider {pinned_version()} on node {node}")
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if any(line.startswith("listening ") for line in text.splitlines()):
            return
        if process.poll() is not None:
            tail = " | ".join(text.strip().splitlines()[-3:]) or "no output"
            raise Unavailable(f"node exited with {process.returncode}: {tail[:200]}")
        time.sleep(0.05)
    raise Unavailable(f"the harness did not listen within {START_SECONDS} s")
