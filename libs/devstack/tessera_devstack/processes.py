"""Helpers shared by everything that spawns a child process.

Two rules keep local servers from outliving us:
- every child asks the kernel for a signal when its parent thread dies (PR_SET_PDEATHSIG, Linux),
  so even a SIGKILLed pytest or `make run` takes its children along;
- every child is tracked and killed at interpreter exit (atexit), for the paths where the
  normal teardown did not run.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(sig: int = signal.SIGTERM, *, thread_outlives_child: bool = False) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when we die.

    The kernel ties this to the spawning *thread*, so it is only armed for spawns from the main
    thread (a child spawned from a short-lived worker thread would be killed when that thread
    ends), or from a thread the caller knows to outlive the child (`thread_outlives_child`).
    Popen switches user before calling preexec_fn, so the setting survives `user=`.
    """
    if _LIBC is None or not (thread_outlives_child or threading.current_thread() is threading.main_thread()):
        return None
    parent_pid = os.getpid()
    prctl = _LIBC.prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent_pid:  # we died between fork and prctl
            os._exit(1)

    return arm


# Popen -> (signal that stops it gracefully, whole process group); stopped at exit if alive.
_tracked: dict[subprocess.Popen, tuple[int, bool]] = {}
_tracked_lock = threading.Lock()


def track(
    process: subprocess.Popen, stop_signal: int = signal.SIGTERM, whole_group: bool = False
) -> None:
    with _tracked_lock:
        _tracked[process] = (stop_signal, whole_group)


def untrack(process: subprocess.Popen) -> None:
    with _tracked_lock:
        _tracked.pop(process, None)


@atexit.register
def _stop_tracked_processes() -> None:
    with _tracked_lock:
        leftovers = list(_tracked.items())
        _tracked.clear()
    for process, (stop_signal, whole_group) in reversed(leftovers):
        stop_process(process, timeout=5.0, stop_signal=stop_signal, whole_group=whole_group)


def stop_process(
    process: subprocess.Popen,
    timeout: float = 10.0,
    stop_signal: int = signal.SIGTERM,
    whole_group: bool = False,
) -> int | None:
    """Ask the process to stop, wait up to `timeout`, then SIGKILL; always waits for the exit.

    `whole_group`: the child leads its own session (start_new_session=True); after it is gone,
    SIGKILL whatever is left in its process group (e.g. server workers it forked).
    """
    if process.poll() is None:
        try:
            process.send_signal(stop_signal)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        except ProcessLookupError:
            pass
    if whole_group:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    untrack(process)
    return process.returncode


def stop_pid(pid: int, timeout: float = 10.0, stop_signal: int = signal.SIGTERM) -> None:
    """Same as stop_process for a process we did not spawn (e.g. left over by an earlier run)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.send_signal(stop_signal)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass


def tail_file(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


class DirectoryInUse(RuntimeError):
    pass


class DirectoryLock:
    """An exclusive flock on `<dir>.lock`, held while we run a server on `<dir>`.

    If we can take it, any server still running on that directory is an orphan of an earlier
    run and may be stopped; if we cannot, another live devstack owns it and we must not touch it.
    The lock dies with our process (flock), so a crash never leaves it stuck.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory.with_name(directory.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DirectoryInUse(
                f"{self.directory} is in use by another devstack process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
