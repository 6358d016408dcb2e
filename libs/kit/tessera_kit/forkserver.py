"""The local stack's fork server: `python -m tessera_kit.forkserver <control fd>`.

Every service process of a local stack (`make run`, `make bench`, the tests) runs the same
interpreter and mostly the same libraries: Litestar, msgspec, asyncpg, nats-py, granian, uvloop,
structlog, prometheus-client, joserfc, cryptography, httpx and the kit. Started one by one,
each process builds its own copy of them (~25 MB that is the same in all of them). This
process imports them once and then forks every service from itself, so the interpreter and
those libraries stay in pages shared copy-on-write by all services (gc.freeze keeps the
collector from writing to them). The supervisor side is `tessera_devstack.forking`.

Only for local stacks: in Kubernetes (deploy/) every pod runs one service with
`python -m tessera_kit.serve`, as before; there is nothing to share inside a pod.

A forked service is the process `python -m <module> <args>` would have been: its own pid,
session and process group (setsid, as `start_new_session`), its own environment (os.environ
and the C environment replaced), working directory, `sys.argv`, `sys.path[0]`, stdin from
/dev/null and stdout+stderr on the pipe the supervisor passed along; then the module runs as
`__main__`. It gets SIGKILL if this server dies (PR_SET_PDEATHSIG), so none outlives it; the
supervisor restarts the server and the services it took along.

Forking is safe only before threads, event loops and connections exist (a fork copies a lock
held by another thread as held forever, and an event loop's or a connection's descriptors
would be shared with every child). The preload only imports, and `assert_fork_safe` checks it
before every fork: one OS thread, no asyncio event loop, no file descriptor but our own.
Randomness: Python reseeds `random` in every child (random.py registers it with
os.register_at_fork); `secrets`/os.urandom and OpenSSL's generator (fork-aware) are per
process anyway; no preloaded module holds a generator of its own (a test checks). The hash
seed (PYTHONHASHSEED) is chosen at interpreter start, so the services of one server share it:
a new one per server, never a fixed one; so too the address-space layout (ASLR is applied at
exec), one more reason this is for local stacks only. Variables read at interpreter start (PYTHON*, MALLOC_*,
GLIBC_TUNABLES, LD_*) must therefore match the server's: a request with other values is
refused, and the supervisor starts that service with exec instead.

Its command line (ps, pgrep -f, /proc/<pid>/cmdline) is rewritten to the one it was asked for,
as setproctitle does: the server is started with room for it (TITLE_ROOM). /proc/<pid>/environ
still shows the server's initial environment: what the kernel recorded at exec, not the
service's (its own lives in os.environ and the C environment).

Protocol: one JSON object per packet on the SOCK_SEQPACKET socket whose descriptor is argv[1].
  server -> client  {"ready": pid, "modules": n}          preloaded, fork-safe
  client -> server  {"spawn": id, "module": m, "args": [...], "env": {...}, "cwd": path|null,
                     "stop_signal": n}   with the write end of the output pipe (SCM_RIGHTS)
  server -> client  {"spawned": id, "pid": n}   with a pidfd of the child (SCM_RIGHTS)
                    {"refused": id, "error": text}
  server -> client  {"exited": pid, "returncode": n}       n < 0: killed by signal -n
  client -> server  {"release": id}
  server -> client  {"released": id}   from the bare image that replaced the server (below)
When the client closes the socket, or on SIGTERM/SIGINT/SIGHUP, the server stops its children
with their stop signal (SIGKILL after STOP_TIMEOUT), reports their exits and exits itself.

Release, once every service of a stack is started: each service has by then copied the shared
pages it writes to (reference counts, the interpreter's specialised bytecode), so the server is
the last holder of ~20 MB of pages no one else uses (measured with /proc/<pid>/pagemap: 13 MB
that all eight services had copied, 7 MB of library pages only the server had touched). The
server then execs itself without the preload (same pid, so the children keep their parent and
their PR_SET_PDEATHSIG; ~8 MB PSS), and goes on reaping, reporting and stopping its children.
Later spawns are refused: the supervisor execs those services instead.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

# What the services share (see the module's docstring); each pulls in its dependencies.
# A module only one service uses is left out: forked, its copy would be private anyway, and
# the server's copy extra. Service packages (tessera_identity, ...) are left out too: they
# define process-wide state at import (identity's argon2 gauges in the metrics registry)
# that every other service would then carry and export.
PRELOAD = (
    "uvloop",
    "granian.constants",
    "granian.log",
    "granian.server.embed",
    "tessera_kit.app",  # Litestar, msgspec, asyncpg, nats-py, structlog, prometheus-client, events
    "tessera_kit.crypto",
    "tessera_kit.periodic",
    "tessera_kit.ratelimit",
    "tessera_kit.regexes",
    "tessera_kit.search",
    "httpx",  # the gateway's upstream client, connectors' HTTP connectors
    "joserfc.jwk",  # the gateway, identity and connectors: JWTs and keys
    "joserfc.jwt",
    "joserfc.errors",
)

# Read once by the interpreter or the C library at process start: a forked child keeps ours.
STARTUP_PREFIXES = ("PYTHON", "MALLOC_", "GLIBC_TUNABLES", "LD_")
STOP_TIMEOUT = 10.0
# Bytes of command line the server is started with beyond its own (an argument of dots), for
# its children to write theirs into.
TITLE_ROOM = 256
_PR_SET_PDEATHSIG = 1
RELEASED = "--released"
_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_HANDLED = {signal.SIGCHLD, *_STOPS}
_MAX_MESSAGE = 1 << 20


def startup_variables(environ) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith(STARTUP_PREFIXES)}


class NotForkSafe(RuntimeError):
    pass


def preload() -> None:
    """Import what the services share, as a service process would (undeclared extras refused),
    then collect start-up's garbage and freeze the survivors out of the collector's reach."""
    from tessera_kit import serve  # here, not at the top: a released server imports neither

    serve.refuse_undeclared_extras()
    for name in PRELOAD:
        importlib.import_module(name)
    _warm_litestar()
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


def _warm_litestar() -> None:
    """Litestar imports part of itself only when an app is built: build one as the kit's app
    factory does (its logging off: Litestar's default logging starts a queue thread)."""
    from litestar import Litestar, get
    from litestar.openapi import OpenAPIConfig

    @get("/", sync_to_thread=False)
    def nothing() -> None:
        return None

    Litestar(route_handlers=[nothing], openapi_config=OpenAPIConfig(title="", version="0", render_plugins=[]),
             debug=False, logging_config=None)


def assert_fork_safe(own_fds: set[int]) -> None:
    """No thread, event loop or foreign descriptor that a fork would copy into a service."""
    import asyncio  # loaded by the preload anyway

    tasks = os.listdir("/proc/self/task")
    if len(tasks) != 1 or threading.active_count() != 1:
        raise NotForkSafe(f"{len(tasks)} OS threads ({threading.enumerate()}): a fork would copy their locks")
    if asyncio.events._get_running_loop() is not None:
        raise NotForkSafe("an asyncio event loop is running")
    policy = asyncio.events._event_loop_policy
    local = getattr(policy, "_local", None)
    if getattr(local, "_loop", None) is not None:
        raise NotForkSafe("an asyncio event loop exists: its descriptors would be shared with every service")
    foreign = {}
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd in own_fds or fd <= 2:
            continue
        try:
            foreign[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself had open
            continue
    if foreign:
        raise NotForkSafe(f"open descriptors a fork would share with every service: {foreign}")


@dataclass
class ChildJob:
    """What a freshly forked child runs, once out of the server's loop."""

    module: str
    args: list[str]
    env: dict[str, str]
    cwd: str | None
    output: int
    server_pid: int


class ForkServer:
    def __init__(self, control: socket.socket, children: dict[int, int] | None = None,
                 released: bool = False):
        self.control = control
        self.children: dict[int, int] = dict(children or {})  # pid -> its stop signal
        self.released = released  # the preload is gone: no more forks
        self.startup_env = startup_variables(os.environ)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, _noticed)  # the wakeup descriptor says which
        # Blocked by release() across its exec, so none is lost or kills us on the way: what
        # came meanwhile is delivered now, to the handlers above.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)

    @property
    def own_fds(self) -> set[int]:
        return {self.control.fileno(), self.wake_read, self.wake_write}

    def send(self, message: dict, fds: list[int] = ()) -> None:
        data = json.dumps(message).encode()
        try:
            if fds:
                socket.send_fds(self.control, [data], list(fds))
            else:
                self.control.send(data)
        except OSError:  # the supervisor is gone: we are about to stop anyway
            pass

    def run(self) -> ChildJob | None:
        """Serve until told to stop (None), or return in a freshly forked child (its job)."""
        if not self.released:
            assert_fork_safe(self.own_fds)
            self.send({"ready": os.getpid(), "modules": len(sys.modules)})
        self.reap()  # after a release: children that exited while this image was loading
        while True:
            readable, _, _ = select.select([self.control, self.wake_read], [], [])
            stop = False
            if self.wake_read in readable:
                try:
                    received = os.read(self.wake_read, 512)
                except BlockingIOError:
                    received = b""
                stop = any(s in received for s in _STOPS)
            self.reap()
            if stop:
                break
            if self.control in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, _MAX_MESSAGE, 4)
                except ConnectionError:
                    data, fds = b"", []
                if not data:  # the supervisor closed its end, or died
                    break
                request = json.loads(data)
                if "release" in request:
                    for fd in fds:
                        os.close(fd)
                    if self.release(request["release"]):  # returns only if it did not exec
                        break  # a stop signal came first
                    continue
                job = self.handle(request, fds)
                if job is not None:
                    return job
        self.stop_children()
        return None

    def handle(self, request: dict, fds: list[int]) -> ChildJob | None:
        output, extra = (fds[0], fds[1:]) if fds else (None, [])
        for fd in extra:
            os.close(fd)
        ident = request.get("spawn")
        try:
            if self.released:
                raise ValueError("it was released after start-up (its preload is gone)")
            if output is None:
                raise ValueError("no output descriptor came with the request")
            if startup_variables(request["env"]) != self.startup_env:
                raise ValueError("its interpreter-start variables (PYTHON*, MALLOC_*, LD_*) differ from "
                                 "the fork server's")
            assert_fork_safe(self.own_fds | {output})
        except (ValueError, KeyError, NotForkSafe) as error:
            if output is not None:
                os.close(output)
            self.send({"refused": ident, "error": str(error)})
            return None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        gc.freeze()  # what the loop allocated since: out of the children's collections too
        try:
            pid = os.fork()
        except OSError as error:  # out of processes or memory: say so, keep serving
            os.close(output)
            self.send({"refused": ident, "error": f"fork failed: {error}"})
            return None
        if pid == 0:
            self.leave()
            return ChildJob(request["module"], list(request.get("args", [])), dict(request["env"]),
                            request.get("cwd"), output, os.getppid())
        os.close(output)
        self.children[pid] = int(request.get("stop_signal", signal.SIGTERM))
        pidfd = os.pidfd_open(pid)
        try:
            self.send({"spawned": ident, "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)
        return None

    def release(self, ident) -> bool:
        """Replace this process's image with one without the preload (see the module's
        docstring), keeping the pid, the children and the control socket."""
        if self.released:
            self.send({"released": ident})
            return False
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)  # the new image unblocks them
        try:
            noticed = os.read(self.wake_read, 512)
        except BlockingIOError:
            noticed = b""
        if any(sig in noticed for sig in _STOPS):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            return True
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        state = json.dumps({"release": ident, "children": self.children})
        try:
            os.set_inheritable(self.control.fileno(), True)
            os.execv(sys.executable, [sys.executable, "-m", "tessera_kit.forkserver", str(self.control.fileno()),
                                      "." * TITLE_ROOM, RELEASED, state])
        except OSError as error:  # still the preloaded server: keep serving as one
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            self.send({"refused": ident, "error": f"exec failed: {error}"})
            self.reap()  # what the drained wakeup bytes may have said
            return False

    def leave(self) -> None:
        """In a new child: drop everything of the server's before becoming a service."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.control.close()
        os.close(self.wake_read)
        os.close(self.wake_write)
        self.children.clear()

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.pop(pid, None)
            self.send({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})

    def stop_children(self) -> None:
        for pid, stop_signal in list(self.children.items()):
            _signal(pid, stop_signal)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.children and time.monotonic() < deadline:
            select.select([self.wake_read], [], [], 0.1)
            try:
                os.read(self.wake_read, 512)
            except BlockingIOError:
                pass
            self.reap()
        for pid in list(self.children):
            _signal(pid, signal.SIGKILL)
        while self.children:
            pid, status = os.waitpid(-1, 0)
            self.children.pop(pid, None)
            self.send({"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def set_command_line(words: list[str]) -> None:
    """Show `words` as this process's command line, in the memory the kernel reads it from
    (setproctitle's way: one string, its last byte not NUL, so the kernel reads up to our NUL)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49
    except (OSError, IndexError, ValueError):
        return
    room = end - start
    if room < 2:
        return
    title = " ".join(words).encode(errors="replace")[: room - 2]
    ctypes.memmove(start, title + b"\0" + b" " * (room - len(title) - 1), room)


def _noticed(signum, frame) -> None:
    pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def become(job: ChildJob) -> None:
    """Turn this fresh child into `python -m <module> <args>` and run it."""
    os.setsid()  # its own session and process group, as start_new_session gives an exec'd one
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != job.server_pid:  # the server died before the line above
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(job.output, 1)
    os.dup2(job.output, 2)
    os.close(job.output)
    set_command_line([sys.executable, "-m", job.module, *job.args])
    if job.cwd:
        os.chdir(job.cwd)
    os.environ.clear()  # unsetenv/putenv: the C environment follows
    os.environ.update(job.env)
    sys.argv = [job.module, *job.args]
    sys.path[0] = os.getcwd()  # as `python -m` sets it
    # The refusal the preload ran under; the module installs its own (a service may need one).
    from tessera_kit import serve

    sys.meta_path[:] = [f for f in sys.meta_path if not serve.is_refusal(f)]
    # As `python -m` finds it: not imported yet. The preload imported tessera_kit.serve, and
    # runpy warns (in every service's log) when the module it runs as __main__ is already there.
    # A package stays (runpy runs its __main__, and its submodules hang on the package object).
    if not hasattr(sys.modules.get(job.module), "__path__"):
        sys.modules.pop(job.module, None)
    runpy.run_module(job.module, run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> None:
    released = None
    if len(argv) >= 2 and argv[-2] == RELEASED:  # exec'd by release(), with its state
        released, argv = json.loads(argv[-1]), argv[:-2]
    if len(argv) not in (1, 2):
        raise SystemExit("usage: python -m tessera_kit.forkserver <control socket descriptor> [room]")
    set_command_line([sys.executable, "-m", "tessera_kit.forkserver", argv[0]])  # the room hidden
    control = socket.socket(fileno=int(argv[0]))
    if released is None:
        preload()
        server = ForkServer(control)
    else:
        children = {int(pid): int(stop_signal) for pid, stop_signal in released["children"].items()}
        server = ForkServer(control, children, released=True)
        server.send({"released": released["release"]})
    job = server.run()
    if job is not None:  # a forked child: the server's frames are gone, run the service
        become(job)


if __name__ == "__main__":
    main(sys.argv[1:])
