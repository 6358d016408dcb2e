"""Run a service: `python -m tessera_kit.serve tessera_audit_log.main:app`.

granian serves about twice uvicorn's requests/s here. It runs embedded in this
process (one process per service instead of granian's supervisor plus a worker,
which halves the idle memory of the stack); scale out by running more processes.
Reads `HOST`, `PORT` and `TESSERA_IDLE_CONNECTION_SECONDS`; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
import threading

# Packages some libraries import only because they are installed, for features no service
# uses: nats-py its WebSocket transport (aiohttp), Litestar its pydantic and attrs plugins
# (attr, attrs: ~1 MB per process), structlog and httpx their rich console output and command
# line (rich, click, pygments). The development environment holds them for tests and tools
# (hypothesis, jsonschema); no service declares them, and together they cost ~16 MB in each
# service process. Refused before anything imports them (this module imports
# the libraries only once `main` ran this): their import fails as if they were not installed,
# each library takes its plain path, and the error says where the refusal comes from.
NOT_FOR_SERVICES = ("aiohttp", "pydantic", "pydantic_core", "attr", "attrs", "rich", "click", "pygments")


# A service that does use one of them, by the top-level package of its app: not refused to it,
# and imported with `import_declared` when first needed, so an idle service does not hold it.
SERVICE_NEEDS: dict[str, tuple[str, ...]] = {
    # Its webhook client: aiohttp sends a request for a fraction of httpx's CPU (and uses attrs).
    "tessera_webhook_dispatcher": ("aiohttp", "attr"),
}


class _UndeclaredExtras:
    """A meta path finder that refuses NOT_FOR_SERVICES (less what the service needs) with a
    ModuleNotFoundError naming this module (a `None` in sys.modules would only say 'import
    halted')."""

    # Recognised by this mark, not by class: `python -m tessera_kit.serve` runs this file as
    # __main__, a second copy of the class beside the importable module's.
    tessera_refusal = True

    def __init__(self, refused: frozenset[str]) -> None:
        self.refused = refused
        self.lifted = threading.local()  # import_declared's thread, while it imports

    def find_spec(self, name: str, path=None, target=None):
        if name.partition(".")[0] in self.refused and not getattr(self.lifted, "on", False):
            raise ModuleNotFoundError(
                f"No module named {name!r} in a service process: tessera_kit.serve.NOT_FOR_SERVICES"
                " keeps it out (a service that needs it must be named in SERVICE_NEEDS)", name=name)
        return None


def is_refusal(finder) -> bool:
    return getattr(finder, "tessera_refusal", False) is True


def refuse_undeclared_extras(needed: tuple[str, ...] = ()) -> None:
    if not any(is_refusal(finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _UndeclaredExtras(frozenset(NOT_FOR_SERVICES) - frozenset(needed)))


def import_declared(name: str):
    """Import a package of SERVICE_NEEDS when the service first needs it, with the refusal
    lifted for this thread meanwhile: its import may probe for a refused one (yarl, which
    aiohttp imports, asks `find_spec("pydantic_core")`, which the refusal would answer with an
    error instead of None), and must see the environment as it is, as it would without the
    refusal. Other threads stay refused, and nothing global is locked or changed: the import
    may run in a thread while the event loop goes on (and imports) beside it."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    refusals = [(finder, getattr(finder.lifted, "on", False)) for finder in sys.meta_path if is_refusal(finder)]
    for finder, _ in refusals:
        finder.lifted.on = True
    try:
        return importlib.import_module(name)
    finally:
        for finder, before in refusals:
            finder.lifted.on = before  # as it was: a call inside another's import leaves it lifted


# A kept-alive connection with no request for this long is closed (granian's HTTP/1
# header_read_timeout, its default made ours; it also bounds how long a request's head may take
# to arrive): the gateway reuses one only well before (tessera_gateway.upstream
# .KEEPALIVE_EXPIRY_SECONDS), so no request meets that close. The gateway's own listener may be
# given longer with TESSERA_IDLE_CONNECTION_SECONDS: a proxy in front of it must never keep a
# connection longer than the gateway does (ingress-nginx keeps them 60 s, Google's balancers 600 s).
IDLE_CONNECTION_SECONDS = 30


def idle_connection_seconds() -> int:
    value = os.environ.get("TESSERA_IDLE_CONNECTION_SECONDS", "").strip()
    if not value:
        return IDLE_CONNECTION_SECONDS
    if not value.isdigit() or not 1 <= int(value) <= 3600:
        raise SystemExit(f"TESSERA_IDLE_CONNECTION_SECONDS must be whole seconds from 1 to 3600, not {value[:20]!r}")
    return int(value)


def release_startup_memory() -> None:
    """Once started: collect start-up's garbage (imports, migrations, app assembly), keep what
    survived out of later collections (gc.freeze: fewer objects for the collector to walk),
    and hand the freed heap back to the system (glibc's malloc_trim; ~3 MB per process)."""
    import ctypes
    import gc

    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc: its allocator keeps what it keeps
        pass


def after_startup(app, action):
    """The ASGI app, calling `action` once its lifespan start-up has completed."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_noticing_startup(message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                action()

        return await app(scope, receive, send_noticing_startup)

    return wrapped


def load(target: str):
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


async def serve(target: str) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    level = os.environ.get("LOG_LEVEL", "info").lower()
    server = Server(
        after_startup(load(target), release_startup_memory),
        address=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "3000")),
        interface=Interfaces.ASGI,
        websockets=False,
        # HTTP/1.1 only, as Logto serves: granian's default also takes cleartext HTTP/2 (prior
        # knowledge), a second protocol and framing at every port that nothing here uses.
        http=HTTPModes.http1,
        backlog=1024,
        http1_settings=HTTP1Settings(header_read_timeout=idle_connection_seconds() * 1000),
        log_access=False,
        log_level=LogLevels(level) if level in LogLevels.__members__ else LogLevels.warning,
    )
    loop = asyncio.get_running_loop()

    def stop() -> None:
        # An app made by the kit's factory may still be waiting for its dependencies: end that
        # wait. Looked up, not imported: the gateway is no such app, and importing the factory
        # would load Litestar, asyncpg and nats into it (~10 MB) for nothing.
        app_factory = sys.modules.get("tessera_kit.app")
        if app_factory is not None:
            app_factory.request_stop()
        server.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await server.serve()


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m tessera_kit.serve <module>:<app>")
    refuse_undeclared_extras(SERVICE_NEEDS.get(argv[0].partition(".")[0].partition(":")[0], ()))
    import uvloop

    uvloop.run(serve(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
