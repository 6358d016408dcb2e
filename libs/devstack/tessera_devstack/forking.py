"""The supervisor's side of the fork server (tessera_kit.forkserver, which says why).

`ForkServerConnection` talks to one running server over its control socket: `spawn` asks for
a child and returns a `ForkedProcess`, which offers what the Supervisor uses of
subprocess.Popen (pid, poll, wait, send_signal, kill, returncode, stdout) for a process that
is the server's child, not ours:
- signals go through a pidfd the server hands over with the pid, so they never reach a
  process that reused the pid;
- the exit code comes from the server, which reaps its children and reports each one;
- if the server dies, its children die with it (SIGKILL, PR_SET_PDEATHSIG): the connection
  waits for each on its pidfd and records it as killed (`lost_with_server`); the Supervisor
  then starts a new server and forks them again.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO

SERVER_MODULE = "tessera_kit.forkserver"
# A child the server cannot report any more (it died) got SIGKILL with it; how long to wait
# for that on its pidfd.
LOST_CHILD_TIMEOUT = 15.0


def supported() -> bool:
    """Linux with pidfds (5.3+) and the kit installed; elsewhere services are exec'd."""
    if sys.platform != "linux" or not hasattr(os, "pidfd_open") or not hasattr(signal, "pidfd_send_signal"):
        return False
    import importlib.util

    return importlib.util.find_spec(SERVER_MODULE) is not None


def module_invocation(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(module, args) if `argv` is `<this python> -m <module> <args>`: what a fork can run."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m":
        return argv[2], list(argv[3:])
    return None


class ForkServerError(RuntimeError):
    pass


class ForkedProcess:
    """A child of the fork server, seen as a subprocess.Popen."""

    def __init__(self, pid: int, pidfd: int, args: Sequence[str]):
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None
        self.stdout: IO[bytes] | None = None  # set by the caller, who holds the pipe's read end
        self.lost_with_server = False
        self._pidfd: int | None = pidfd
        self._exited = threading.Event()
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        with self._lock:
            if self.returncode is not None or self._pidfd is None:
                return
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait_gone(self, timeout: float) -> bool:
        """Wait on the pidfd (readable once the process has exited), whoever reaps it."""
        with self._lock:
            fd = self._pidfd
        if fd is None:
            return True
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)

    def _exit(self, returncode: int, *, lost: bool = False) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            self.returncode = returncode
            self.lost_with_server = lost
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        self._exited.set()

    def __repr__(self) -> str:
        return f"<ForkedProcess pid={self.pid} returncode={self.returncode}>"


class ForkServerConnection:
    """One running fork server: its process (a Popen the Supervisor started) and socket."""

    def __init__(self, process: subprocess.Popen, control: socket.socket, output=None,
                 env: Mapping[str, str] | None = None, cwd=None):
        self.process = process
        self.env, self.cwd = dict(env or {}), cwd  # how it was started, to start another
        self.control = control
        self.output = output  # the Supervisor's ManagedProcess reading what the server prints
        self.lost: list[ForkedProcess] = []  # children it took along when it died
        self.pid = process.pid
        self.stopping = False
        # The server is gone (its socket closed) and each child it had is accounted for.
        self.closed = threading.Event()
        self._eof = False
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._replies: dict[int, dict] = {}
        self._abandoned: set[int] = set()
        self._reply_ready = threading.Condition()
        self._children: dict[int, ForkedProcess] = {}
        self._ready: dict | None = None
        self.refusal = ""  # why the last refused spawn was refused
        self._reader: threading.Thread | None = None

    @staticmethod
    def socket_pair() -> tuple[socket.socket, socket.socket]:
        """(ours, the server's): its descriptor goes into the server's argv and pass_fds."""
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def wait_ready(self, timeout: float) -> dict:
        """Block until the server has preloaded (its first message); then start reading."""
        self.control.settimeout(timeout)
        try:
            data = self.control.recv(1 << 16)
        except TimeoutError:
            raise ForkServerError(f"the fork server (pid {self.pid}) was not ready after {timeout:.0f}s") from None
        finally:
            self.control.settimeout(None)
        if not data:
            self.process.wait(10)
            raise ForkServerError(f"the fork server (pid {self.pid}) exited with code "
                                  f"{self.process.returncode} before it was ready")
        self._ready = json.loads(data)
        self._reader = threading.Thread(target=self._read, name=f"fork-server-{self.pid}", daemon=True)
        self._reader.start()
        return self._ready

    @property
    def children(self) -> list[ForkedProcess]:
        return list(self._children.values())

    def spawn(self, module: str, args: Sequence[str], *, env: Mapping[str, str], cwd: str | None,
              stop_signal: int, output: int, timeout: float = 30.0) -> ForkedProcess | None:
        """Fork `python -m module args` with `output` as its stdout+stderr. None: the server
        refused (e.g. other interpreter-start variables), so the caller execs it instead."""
        reply = self._ask("spawn", {"module": module, "args": list(args), "env": dict(env),
                                    "cwd": str(cwd) if cwd is not None else None,
                                    "stop_signal": int(stop_signal)},
                          [output], timeout, doing=f"forking {module}")
        if "refused" in reply:
            self.refusal = reply["error"]
            return None
        return reply["process"]

    def release(self, timeout: float = 30.0) -> None:
        """Have the server drop its preload once the stack is started (tessera_kit.forkserver
        says why): its children run on, and later spawns are refused (the caller execs them)."""
        reply = self._ask("release", {}, [], timeout, doing="being released")
        if "refused" in reply:
            raise ForkServerError(f"the fork server (pid {self.pid}) was not released: {reply['error']}")

    def _ask(self, verb: str, fields: dict, fds: list[int], timeout: float, *, doing: str) -> dict:
        """Send `{verb: id, **fields}` (with `fds`) and wait for the server's reply to that id."""
        if self._eof:
            raise ForkServerError(f"the fork server (pid {self.pid}) is gone")
        ident = next(self._ids)
        data = json.dumps({verb: ident, **fields}).encode()
        with self._send_lock:
            try:
                if fds:
                    socket.send_fds(self.control, [data], fds)
                else:
                    self.control.send(data)
            except OSError as error:
                raise ForkServerError(f"the fork server (pid {self.pid}) is gone: {error}") from None
        with self._reply_ready:
            if not self._reply_ready.wait_for(lambda: ident in self._replies or self._eof, timeout):
                self._abandoned.add(ident)  # a late child is killed, a late reply dropped
                raise ForkServerError(f"the fork server (pid {self.pid}) did not answer in {timeout:.0f}s")
            reply = self._replies.pop(ident, None)
        if reply is None:
            raise ForkServerError(f"the fork server (pid {self.pid}) died while {doing}")
        return reply

    def close(self) -> None:
        try:
            self.control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(LOST_CHILD_TIMEOUT + 5)
        self.control.close()

    def _read(self) -> None:
        try:
            while True:
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, 1 << 16, 1)
                except OSError:
                    break
                if not data:
                    break
                message = json.loads(data)
                if "spawned" in message:
                    process = ForkedProcess(message["pid"], fds[0], ["fork", str(message["pid"])])
                    self._children[process.pid] = process  # before its exit can be read
                    self._reply({**message, "process": process}, message["spawned"])
                elif "refused" in message:
                    self._reply(message, message["refused"])
                elif "released" in message:
                    self._reply(message, message["released"])
                elif "exited" in message:
                    process = self._children.pop(message["exited"], None)
                    if process is not None:
                        process._exit(message["returncode"])
                for fd in fds[1:] if "spawned" in message else fds:
                    os.close(fd)
        finally:
            with self._reply_ready:
                self._eof = True
                self._reply_ready.notify_all()
            # Whatever it did not report died with it (SIGKILL, PR_SET_PDEATHSIG) or is dying.
            for process in list(self._children.values()):
                if not process.wait_gone(LOST_CHILD_TIMEOUT):
                    process.send_signal(signal.SIGKILL)
                    process.wait_gone(5.0)
                process._exit(-signal.SIGKILL, lost=True)
                self.lost.append(process)
            self._children.clear()
            self.closed.set()

    def _reply(self, message: dict, ident: int) -> None:
        with self._reply_ready:
            if ident in self._abandoned:
                if "process" in message:
                    message["process"].kill()
                return
            self._replies[ident] = message
            self._reply_ready.notify_all()
