"""How `python -m tessera_kit.serve` prepares a service process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

# The lines of a script that try an import the refusal keeps out, and print how it went.
TRY_A_REFUSED_IMPORT = [
    "try:",
    "    import pydantic",
    "    print('not refused')",
    "except ModuleNotFoundError as error:",
    "    print('refused:', error)",
]


def _run(script: str) -> str:
    """The script's output, run by a fresh interpreter (refusals are process-wide)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_service_process_leaves_undeclared_extras_unimported():
    """The libraries still work (a Litestar app with a route, a NATS client, structlog, httpx)
    without the packages they would otherwise import just because the dev environment has them."""
    script = "\n".join([
        "import sys",
        "from tessera_kit import serve",
        "serve.refuse_undeclared_extras()",
        "import httpx, nats, structlog",
        "from litestar import Litestar, get",
        "from litestar.testing import TestClient",
        "@get('/')",
        "async def hello() -> dict:",
        "    return {'ok': True}",
        "with TestClient(Litestar([hello])) as client:",
        "    assert client.get('/').json() == {'ok': True}",
        "structlog.get_logger().info('still logs')",
        "loaded = [n for n in serve.NOT_FOR_SERVICES if sys.modules.get(n) is not None]",
        "print('loaded:', loaded)",
        # A service that does import one learns why it cannot.
        *TRY_A_REFUSED_IMPORT,
    ])
    stdout = _run(script)
    assert "loaded: []" in stdout
    assert "refused: No module named 'pydantic' in a service process: tessera_kit.serve" in stdout
    # Without the refusal, this environment does import some of them (the test means something).
    plain = subprocess.run([sys.executable, "-c", "import sys, nats, structlog, litestar\n"
                            "from litestar import Litestar\nLitestar([])\n"
                            "print(sorted(n for n in ('aiohttp', 'pydantic', 'rich', 'attrs') if n in sys.modules))"],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stdout.strip() != "[]", plain.stdout + plain.stderr


async def test_the_startup_action_runs_once_the_app_has_started():
    from tessera_kit.serve import after_startup

    seen: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            seen.append("app started")
            await send({"type": "lifespan.startup.complete"})
        else:
            seen.append(f"request {scope['path']}")

    wrapped = after_startup(app, lambda: seen.append("action"))
    messages = iter([{"type": "lifespan.startup"}])

    async def receive():
        return next(messages)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await wrapped({"type": "lifespan"}, receive, send)
    await wrapped({"type": "http", "path": "/x"}, receive, send)
    assert seen == ["app started", "action", "request /x"]
    assert sent == [{"type": "lifespan.startup.complete"}]


def test_releasing_startup_memory_leaves_the_process_working():
    import gc

    from tessera_kit.serve import release_startup_memory

    try:
        release_startup_memory()
        assert gc.get_freeze_count() > 0
        assert gc.collect() >= 0
    finally:
        gc.unfreeze()


def test_a_service_that_needs_one_of_them_gets_it_and_only_it():
    script = "\n".join([
        "import sys",
        "from tessera_kit import serve",
        "assert serve.SERVICE_NEEDS['tessera_webhook_dispatcher'] == ('aiohttp', 'attr')",
        "serve.refuse_undeclared_extras(('aiohttp', 'attr'))",
        "print('at start:', 'aiohttp' in sys.modules)",  # imported when first needed
        "aiohttp = serve.import_declared('aiohttp')",
        "import aiohttp.web, attr",  # its submodules too, imported later
        *TRY_A_REFUSED_IMPORT,
    ])
    stdout = _run(script)
    assert "refused: No module named 'pydantic' in a service process" in stdout
    assert "at start: False" in stdout


def test_the_refusal_is_lifted_only_for_the_thread_that_imports(tmp_path):
    """import_declared may run in a thread beside the event loop: while its import runs, every
    other thread stays refused."""
    # A module whose body waits until the main thread has tried a refused import.
    (tmp_path / "slow_to_import.py").write_text(
        "import builtins\nbuiltins.inside.set()\nbuiltins.outside.wait(10)\n")
    script = "\n".join([
        "import builtins, sys, threading",
        f"sys.path.insert(0, {str(tmp_path)!r})",
        "from tessera_kit import serve",
        "serve.refuse_undeclared_extras()",
        "builtins.inside, builtins.outside = threading.Event(), threading.Event()",
        "importing = threading.Thread(target=serve.import_declared, args=('slow_to_import',))",
        "importing.start()",
        "assert builtins.inside.wait(10)",  # the thread is importing, the refusal lifted for it
        *TRY_A_REFUSED_IMPORT,
        "print('waited:', builtins.outside.is_set())",
        "builtins.outside.set()",
        "importing.join(30)",
    ])
    stdout = _run(script)
    assert "refused: No module named 'pydantic' in a service process" in stdout
    assert "waited: False" in stdout  # tried while the other thread was still importing


# A plain ASGI app (not made by the kit), served by `python -m tessera_kit.serve plain_app:app`:
# says when it has started and, at shutdown, whether the kit's app factory got imported.
PLAIN_APP = "\n".join([
    "import sys",
    "async def app(scope, receive, send):",
    "    if scope['type'] == 'http':",
    "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})",
    "        await send({'type': 'http.response.body', 'body': b'ok'})",
    "        return",
    "    while True:",
    "        message = await receive()",
    "        if message['type'] == 'lifespan.startup':",
    "            await send({'type': 'lifespan.startup.complete'})",
    "            print('started', flush=True)",
    "        elif message['type'] == 'lifespan.shutdown':",
    "            print('app factory loaded:', 'tessera_kit.app' in sys.modules, flush=True)",
    "            await send({'type': 'lifespan.shutdown.complete'})",
    "            return",
])


@contextlib.contextmanager
def served_plain_app(tmp_path, **env: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """The plain app served on a free port, once started: (its process, the port)."""
    (tmp_path / "plain_app.py").write_text(PLAIN_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tessera_kit.serve", "plain_app:app"],
        env={**os.environ, "PYTHONPATH": str(tmp_path), "PORT": str(port), "LOG_LEVEL": "warning", **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = iter(process.stdout.readline, "")  # granian prints a warning of its own first
        assert "started" in (line.strip() for line in lines)
        # The app's start-up may complete before granian listens.
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server does not listen"
                time.sleep(0.02)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serving_an_app_not_made_by_the_kit_leaves_the_app_factory_unimported(tmp_path):
    """The gateway is a plain ASGI app: the SIGTERM handler must not pull the kit's app factory
    (Litestar, asyncpg, nats: ~10 MB) into it, and the app still stops cleanly."""
    with served_plain_app(tmp_path) as (process, _):
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "app factory loaded: False" in out


def test_a_kept_alive_connection_without_a_request_is_closed_after_the_idle_time(tmp_path):
    """A served process keeps a connection open between requests, and closes it once idle for
    TESSERA_IDLE_CONNECTION_SECONDS: here 1 s, so the close comes long before granian's own
    default (30 s) would have."""
    with served_plain_app(tmp_path, TESSERA_IDLE_CONNECTION_SECONDS="1") as (_, port), \
            socket.create_connection(("127.0.0.1", port), timeout=15) as connection:
        for _ in range(2):  # two requests on the one connection: it is kept alive
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"ok"):
                chunk = connection.recv(4096)
                assert chunk, f"closed before the answer: {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
        assert connection.recv(4096) == b""  # then closed by the server, well before 15 s


@pytest.mark.parametrize("value", ["0", "abc", "1.5", "-3", "99999"])
def test_an_idle_time_that_is_not_whole_seconds_in_range_stops_the_start(monkeypatch, value):
    from tessera_kit.serve import idle_connection_seconds

    monkeypatch.setenv("TESSERA_IDLE_CONNECTION_SECONDS", value)
    with pytest.raises(SystemExit, match="TESSERA_IDLE_CONNECTION_SECONDS"):
        idle_connection_seconds()
    monkeypatch.setenv("TESSERA_IDLE_CONNECTION_SECONDS", "75")
    assert idle_connection_seconds() == 75
    monkeypatch.delenv("TESSERA_IDLE_CONNECTION_SECONDS")
    assert idle_connection_seconds() == 30
