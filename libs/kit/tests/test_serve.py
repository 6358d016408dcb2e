"""How `python -m tessera_kit.serve` prepares a service process."""

from __future__ import annotations

import subprocess
import sys


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
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    # Without the refusal, this environment does import some of them (the test means something).
    plain = subprocess.run([sys.executable, "-c", "import sys, nats, structlog, litestar\n"
                            "from litestar import Litestar\nLitestar([])\n"
                            "print(sorted(n for n in ('aiohttp', 'pydantic', 'rich') if n in sys.modules))"],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stdout.strip() != "[]", plain.stdout + plain.stderr
