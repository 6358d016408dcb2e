"""A connectors service in the test's loop, on real PostgreSQL and NATS, beside real
providers: an HTTP server speaking SendGrid's, Twilio's, GitHub's, Google's and an OAuth 2.0
provider's request shapes (stdlib `http.server`, in a thread) and an SMTP server (aiosmtpd).

Each test gets its own schema and NATS namespace. The HTTP client of the service is built
in `connectors` only, so how requests are authenticated can change in one place.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tessera_connectors.main import build_spec
from tessera_connectors.settings import ConnectorsSettings
from tessera_events import Actor
from tessera_kit.app import ServiceContext
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import outbox_events, service_client, started

_count = itertools.count()
ADMIN = Actor(type="user", id="admin-user")
KEK = "test-key-encryption-key-" + "k" * 24


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def json(self) -> Any:
        return json.loads(self.body)


# (status, content type, body) or a callable of the request giving that.
Answer = tuple[int, str, bytes] | Callable[[Seen], tuple[int, str, bytes]]


@dataclass
class Providers:
    """A real HTTP server: `answers[path]` says what to reply, `seen` what arrived."""

    url: str
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, path: str, status: int = 200, body: Any = None, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        self.answers[path] = (status, content_type, raw)

    def hang(self, path: str) -> None:
        """Answer `path` only at the end of the test (a provider that never answers in time)."""
        def wait(_: Seen) -> tuple[int, str, bytes]:
            self.release.wait()
            return 200, "application/json", b"{}"
        self.answers[path] = wait

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@pytest.fixture
def providers():
    state: dict[str, Providers] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            p = state["p"]
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(self.command, parts.path, dict(parse_qsl(parts.query)),
                        {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            p.seen.append(seen)
            answer = p.answers.get(parts.path, (404, "text/plain", b"no such path"))
            status, content_type, body = answer(seen) if callable(answer) else answer
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["p"] = p = Providers(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield p
    finally:
        p.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class Deployment:
    client: httpx.AsyncClient
    ctx: ServiceContext
    record_dir: Path
    providers: Providers

    async def events(self, prefix: str = "connectors.") -> list[tuple[str, dict[str, Any]]]:
        """The service's outbox, oldest first: (type, data)."""
        return await outbox_events(self.ctx.pool, prefix=prefix)

    async def raw_outbox(self) -> bytes:
        rows = await self.ctx.pool.fetch("SELECT envelope FROM outbox ORDER BY seq")
        return b"\n".join(bytes(r["envelope"]) for r in rows)

    def record(self) -> dict[str, Any]:
        return json.loads((self.record_dir / "logto_mock_verification_code_record.txt").read_text())


def connectors_settings(providers: Providers, record_dir: Path, **overrides: Any) -> ConnectorsSettings:
    base = providers.url
    return ConnectorsSettings(
        key_encryption_key=KEK, mock_connectors=True, mock_connectors_record_dir=str(record_dir),
        connector_timeout_seconds=1.0,
        sendgrid_endpoint=f"{base}/v3/mail/send",
        twilio_endpoint=base + "/2010-04-01/Accounts/{{accountSID}}/Messages.json",
        github_authorization_endpoint=f"{base}/github/authorize", github_token_endpoint=f"{base}/github/token",
        github_userinfo_endpoint=f"{base}/github/user",
        google_authorization_endpoint=f"{base}/google/auth", google_token_endpoint=f"{base}/google/token",
        google_userinfo_endpoint=f"{base}/google/userinfo",
        **overrides,
    )


@pytest.fixture
async def connectors(database_url, nats_url, namespace, providers, tmp_path):
    ns = f"{namespace}c{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    spec = build_spec(settings, name=f"connectors-{ns}",
                      connectors_settings=connectors_settings(providers, tmp_path))
    async with started(spec) as (app, ctx):
        async with service_client(app, ADMIN, base_url="http://connectors") as client:
            yield Deployment(client, ctx, tmp_path, providers)
