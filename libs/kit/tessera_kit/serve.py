"""Run a service: `python -m tessera_kit.serve tessera_audit_log.main:app`.

granian serves about twice uvicorn's requests/s here; one worker per process
(scale by running more processes). Reads `HOST` and `PORT`.
"""

from __future__ import annotations

import os
import sys

from granian.constants import Interfaces, Loops
from granian.server import Server


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m tessera_kit.serve <module>:<app>")
    Server(
        argv[0],
        address=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "3000")),
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        websockets=False,
        log_access=False,
        log_level=os.environ.get("LOG_LEVEL", "info").lower()
        if os.environ.get("LOG_LEVEL", "info").lower() in ("debug", "info", "warning", "error", "critical")
        else "info",
    ).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
