"""The fork server's preload (tessera_kit.forkserver): what every forked service inherits."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs in a fresh interpreter: the preload must find it as a fork server would.
CHECK = """
import json, random, sys
from tessera_kit import forkserver
forkserver.preload()
forkserver.assert_fork_safe(set())
# A generator a module made at import would be copied, state and all, into every service.
shared = sorted(f"{name}.{attr}" for name, module in list(sys.modules.items())
                for attr, value in list(getattr(module, "__dict__", {}).items())
                if isinstance(value, random.Random) and value is not random._inst
                and not isinstance(value, random.SystemRandom))
print(json.dumps({"generators": shared, "modules": len(sys.modules),
                  "litestar": "litestar" in sys.modules, "refused": "pydantic" in sys.modules,
                  "services": sorted(n for n in sys.modules if n.split(".")[0] in (
                      "tessera_identity", "tessera_rbac", "tessera_gateway"))}))
"""


def test_the_preload_is_fork_safe_and_holds_no_random_generator_of_its_own():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["generators"] == []
    assert result["litestar"] and result["modules"] > 500  # it did preload the stack
    assert not result["refused"]  # as in a service process: undeclared extras stay out
    assert result["services"] == []  # no service's process-wide state (metrics) in the others


def test_a_thread_started_before_a_fork_is_refused():
    script = ("import threading, time\nfrom tessera_kit import forkserver\n"
              "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
              "try:\n    forkserver.assert_fork_safe(set())\n"
              "except forkserver.NotForkSafe as error:\n    print('refused:', error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "refused: 2 OS threads" in done.stdout, done.stdout + done.stderr


def test_an_event_loop_or_an_open_socket_before_a_fork_is_refused():
    script = ("import asyncio, socket\nfrom tessera_kit import forkserver\n"
              "sock = socket.socket()\n"
              "try:\n    forkserver.assert_fork_safe(set())\n"
              "except forkserver.NotForkSafe as error:\n    print('refused:', error)\n"
              "sock.close()\nloop = asyncio.new_event_loop(); asyncio.set_event_loop(loop)\n"
              "try:\n    forkserver.assert_fork_safe(set())\n"
              "except forkserver.NotForkSafe as error:\n    print('refused:', error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout + done.stderr
    assert lines[0].startswith("refused: open descriptors") and "socket:" in lines[0]
    assert lines[1].startswith("refused: an asyncio event loop exists")
