"""Run child processes, forward their output line by line, and say so loudly when one dies.

Each process gets its own session (so a Ctrl-C in the terminal reaches only us and we stop the
children in order), its stdout+stderr merged into one pipe read by a thread that
- keeps the last lines in memory (for error messages),
- appends them to `<log_dir>/<name>.log` if a log dir is given,
- echoes them as `[name] line` to our stdout if `echo` is on.
A monitor thread notices a process that exits without being asked to and reports it on stderr
(name, exit code, last lines), records it in `deaths` and calls `on_death`.

`start(..., fork=True)` of a `python -m <module>` command forks it from the supervisor's fork
server instead (tessera_kit.forkserver: the services share the interpreter and libraries it
preloaded, copy-on-write), started on first use and logged as `fork-server`. Such a process
is still a process of its own (pid, session, environment, working directory, output pipe) and
is watched, stopped and reported like any other. If the fork server dies, its children die
with it: the monitor reports it, starts a new one and forks those children again (their
deaths are the server's, not reported as theirs). Where forking is not possible (not Linux,
no pidfds, different interpreter-start variables) the command is exec'd as before.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import forking
from .forking import ForkedProcess, ForkServerConnection, ForkServerError
from .processes import die_with_parent, stop_process, track

_COLORS = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94]
FORK_SERVER = "fork-server"
# The fork server imports the whole shared stack before it answers (~2 s, more on a busy machine).
FORK_SERVER_READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class ProcessExit:
    name: str
    pid: int
    returncode: int
    last_lines: tuple[str, ...]

    @property
    def description(self) -> str:
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exited with code {self.returncode}"


@dataclass(frozen=True)
class Launch:
    """How a process was started, to fork it again after its fork server died."""

    argv: tuple[str, ...]
    env: Mapping[str, str] | None
    cwd: Path | str | None
    stop_signal: int
    fork: bool


class ManagedProcess:
    def __init__(
        self,
        name: str,
        popen: subprocess.Popen | ForkedProcess,
        log_path: Path | None,
        tail_lines: int,
        stop_signal: int = signal.SIGTERM,
        launch: Launch | None = None,
    ):
        self.name = name
        self.popen = popen  # a Popen, or a ForkedProcess (the same interface) if forked
        self.launch = launch
        self.stop_signal = stop_signal
        self.log_path = log_path
        self.recent: deque[str] = deque(maxlen=tail_lines)
        self.stopping = False  # set before we stop it on purpose: not a crash then
        self.reported = False
        self.reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def forked(self) -> bool:
        return isinstance(self.popen, ForkedProcess)

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(list(self.recent)[-lines:])


class Supervisor:
    def __init__(
        self,
        *,
        log_dir: Path | str | None = None,
        echo: bool = True,
        out: TextIO | None = None,
        report_to: TextIO | None = None,
        on_death: Callable[[ProcessExit], None] | None = None,
        tail_lines: int = 200,
    ):
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.echo = echo
        self._out = out
        self._report_to = report_to
        self.on_death = on_death
        self.tail_lines = tail_lines
        self.deaths: list[ProcessExit] = []
        self._death_queue: queue.Queue[ProcessExit] = queue.Queue()
        self._processes: dict[str, ManagedProcess] = {}  # insertion order = start order
        self._lock = threading.RLock()
        self._output_lock = threading.Lock()
        self._closed = threading.Event()
        self._released = False  # release_fork_server() was called: nothing is forked any more
        self._fork_server: ForkServerConnection | None = None  # the one new forks come from
        # Every fork server started and neither stopped nor mourned yet (one that died may have
        # been replaced by start() before the monitor saw it die).
        self._fork_servers: list[ForkServerConnection] = []
        self.fork_server_restarts = 0
        self._monitor = threading.Thread(target=self._watch, name="supervisor-monitor", daemon=True)
        self._monitor.start()
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)

    # -------------------------------------------------------------- streams

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up late: pytest swaps sys.stdout

    @property
    def report_to(self) -> TextIO:
        return self._report_to or sys.stderr

    def _write(self, stream: TextIO, text: str) -> None:
        with self._output_lock:
            try:
                stream.write(text)
                stream.flush()
            except (ValueError, OSError):  # stream closed at shutdown
                pass

    def _prefix(self, name: str) -> str:
        width = max((len(n) for n in self._processes), default=len(name))
        label = f"[{name}]".ljust(width + 2)
        if getattr(self.out, "isatty", lambda: False)() and not os.environ.get("NO_COLOR"):
            names = list(self._processes)
            color = _COLORS[(names.index(name) if name in names else len(names)) % len(_COLORS)]
            return f"\x1b[{color}m{label}\x1b[0m"
        return label

    # -------------------------------------------------------------- lifecycle

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        stop_signal: int = signal.SIGTERM,
        fork: bool = False,
    ) -> ManagedProcess:
        """Start `argv` as `name` (replacing a previous, stopped process of that name).

        `fork`: a `python -m <module>` command is forked from the fork server (see above)."""
        with self._lock:
            previous = self._processes.get(name)
            if previous is not None and previous.is_running():
                raise RuntimeError(f"{name} is already running (pid {previous.pid})")
            log_path = self.log_dir / f"{name}.log" if self.log_dir is not None else None
            launch = Launch(tuple(argv), env, cwd, stop_signal, fork)
            process = self._fork(name, launch) if fork else None
            if process is None:
                process = subprocess.Popen(
                    list(argv),
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent(stop_signal),
                )
            track(process, stop_signal, whole_group=True)
            managed = ManagedProcess(name, process, log_path, self.tail_lines, stop_signal, launch)
            self._processes.pop(name, None)
            self._processes[name] = managed
            if log_path is not None:
                command = shlex.join(argv).replace("\n", "\\n")
                how = (f" (forked by the {FORK_SERVER}, pid {self._fork_server.pid})"
                       if managed.forked and self._fork_server is not None else "")
                with log_path.open("a", encoding="utf-8") as log:
                    log.write(
                        f"--- {time.strftime('%H:%M:%S')} started pid {process.pid}{how}: {command}\n"
                    )
            managed.reader = threading.Thread(
                target=self._forward_output, args=(managed,), name=f"output-{name}", daemon=True
            )
            managed.reader.start()
            return managed

    # -------------------------------------------------------------- fork server

    @property
    def fork_server_pid(self) -> int | None:
        """The running fork server's pid (it holds the pages its children share), if any."""
        server = self._fork_server
        return server.pid if server is not None and server.process.poll() is None else None

    def release_fork_server(self) -> bool:
        """Once everything is started: the fork server drops its preload (~20 MB that only it
        still holds by then, see tessera_kit.forkserver). From now on nothing is forked: what
        starts later is exec'd, the services a dying server takes along too, and no new
        server is started. False: there was none to release, or it could not be (its log says)."""
        with self._lock:
            self._released = True
            server = self._fork_server
            if server is None or server.process.poll() is not None or server.closed.is_set():
                return False
            try:
                server.release()
            except ForkServerError as error:
                self._note(FORK_SERVER, f"not released: {error}")
                return False
            self._note(FORK_SERVER, f"released its preload (pid {server.pid}): what starts from now on is exec'd")
            return True

    def _fork(self, name: str, launch: Launch) -> ForkedProcess | None:
        """Fork `launch` from the fork server; None: exec it instead (said in its log)."""
        invocation = forking.module_invocation(launch.argv)
        if invocation is None or not forking.supported():
            return None
        if self._released:
            self._note(name, "not forked, exec'd: the fork server was released after start-up")
            return None
        env = dict(os.environ if launch.env is None else launch.env)
        try:
            server = self._running_fork_server(env, launch.cwd)
        except ForkServerError as error:
            self._note(name, f"not forked, exec'd: {error}")
            return None
        read_end, write_end = os.pipe()
        try:
            process = server.spawn(*invocation, env=env, cwd=None if launch.cwd is None else str(launch.cwd),
                                   stop_signal=launch.stop_signal, output=write_end)
        except ForkServerError as error:
            process = None
            self._note(name, f"not forked, exec'd: {error}")
        finally:
            os.close(write_end)
        if process is None:
            if not server.closed.is_set() and server.refusal:
                self._note(name, f"not forked, exec'd: the fork server refused: {server.refusal}")
            os.close(read_end)
            return None
        process.args = list(launch.argv)
        process.stdout = os.fdopen(read_end, "rb")
        return process

    def _note(self, name: str, text: str) -> None:
        log_path = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- {time.strftime('%H:%M:%S')} {text}\n")
        if self.echo:
            self._write(self.out, f"{self._prefix(name)} {text}\n")

    def _running_fork_server(self, env: Mapping[str, str], cwd: Path | str | None) -> ForkServerConnection:
        """The fork server, started if there is none (or the last one died)."""
        server = self._fork_server
        if server is not None and server.process.poll() is None and not server.closed.is_set():
            return server
        # Our environment, but the interpreter-start variables of the first process forked:
        # a child keeps the server's (tessera_kit.forkserver). No service's own settings or
        # credentials: each child gets its environment with its request.
        from tessera_kit.forkserver import TITLE_ROOM, startup_variables

        server_env = {k: v for k, v in os.environ.items() if k not in startup_variables(os.environ)}
        server_env.update(startup_variables(env))
        ours, theirs = ForkServerConnection.socket_pair()
        log_path = self.log_dir / f"{FORK_SERVER}.log" if self.log_dir is not None else None
        try:
            popen = subprocess.Popen(
                # The last argument: room for each child's command line (ps, pgrep -f).
                [sys.executable, "-m", forking.SERVER_MODULE, str(theirs.fileno()), "." * TITLE_ROOM],
                env=server_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=[theirs.fileno()],
                start_new_session=True,
                # From the monitor thread too (a restart): it runs until close(), which stops
                # the server first.
                preexec_fn=die_with_parent(signal.SIGTERM, thread_outlives_child=(
                    threading.current_thread() is self._monitor)),
            )
        except OSError as error:
            ours.close()
            raise ForkServerError(f"cannot start the fork server: {error}") from error
        finally:
            theirs.close()
        track(popen, signal.SIGTERM, whole_group=True)
        managed = ManagedProcess(FORK_SERVER, popen, log_path, self.tail_lines)
        if log_path is not None:
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- {time.strftime('%H:%M:%S')} started pid {popen.pid}: "
                          f"{shlex.join(popen.args[:-1])}\n")
        managed.reader = threading.Thread(target=self._forward_output, args=(managed,),
                                          name=f"output-{FORK_SERVER}", daemon=True)
        managed.reader.start()
        server = ForkServerConnection(popen, ours, output=managed, env=server_env, cwd=cwd)
        try:
            server.wait_ready(FORK_SERVER_READY_TIMEOUT)
        except ForkServerError as error:
            stop_process(popen, timeout=5.0, whole_group=True)
            ours.close()
            managed.reader.join(2.0)
            raise ForkServerError(f"{error}\n--- last lines of the {FORK_SERVER} ---\n"
                                  f"{managed.tail(40) or '(no output)'}") from None
        self._fork_server = server
        self._fork_servers.append(server)
        return server

    def _stop_fork_servers(self, timeout: float) -> None:
        for server in self._fork_servers:
            server.stopping = True
            stop_process(server.process, timeout=timeout, stop_signal=signal.SIGTERM, whole_group=True)
            server.close()
            if server.output is not None and server.output.reader is not None:
                server.output.reader.join(2.0)
        self._fork_servers.clear()
        self._fork_server = None

    def _fork_server_died(self, server: ForkServerConnection) -> None:
        """Report it, start a new one and fork again what it took along (monitor thread)."""
        server.closed.wait(forking.LOST_CHILD_TIMEOUT + 10)  # its children are accounted for
        with self._lock:
            lost = [m for m in self._processes.values()
                    if isinstance(m.popen, ForkedProcess) and m.popen in server.lost and not m.reported]
            for m in lost:
                m.reported = True
        managed = server.output
        if managed is not None:
            if managed.reader is not None:
                managed.reader.join(2.0)
            self._report_death(managed, record=False)
        for m in lost:
            if m.reader is not None:
                m.reader.join(2.0)
        restarted = []
        with self._lock:
            if self._closed.is_set():
                return
            server.close()
            self._fork_servers.remove(server)
            if self._fork_server is server:
                self._fork_server = None
            self.fork_server_restarts += 1
            for m in lost:
                if m.stopping or self._processes.get(m.name) is not m or m.launch is None:
                    continue
                launch = m.launch
                try:
                    self.start(m.name, launch.argv, env=launch.env, cwd=launch.cwd,
                               stop_signal=launch.stop_signal, fork=launch.fork)
                    restarted.append(m.name)
                except Exception as error:  # e.g. its port still taken: say so, as a death
                    self._write(self.report_to, f"!! [{m.name}] could not be started again: {error}\n")
                    self._report_death(m)
            if self._fork_server is None and not self._released:  # nothing forked again: one waits all the same
                try:
                    self._running_fork_server(server.env, server.cwd)
                except ForkServerError as error:
                    self._write(self.report_to, f"!! [{FORK_SERVER}] could not be started again: {error}\n")
        again = ', '.join(restarted) or 'nothing'
        if self._released:
            self._write(self.report_to, f"!! [{FORK_SERVER}] not started again (it was released); "
                        f"exec'd again what died with it: {again}\n")
        else:
            self._write(self.report_to, f"!! [{FORK_SERVER}] started again (pid {self.fork_server_pid}); "
                        f"forked again what died with it: {again}\n")

    def stop(self, name: str, timeout: float = 10.0) -> int | None:
        """Stop `name` on purpose (no crash report); waits for it and its process group."""
        managed = self.get(name)
        managed.stopping = True
        code = stop_process(
            managed.popen, timeout=timeout, stop_signal=managed.stop_signal, whole_group=True
        )
        if managed.reader is not None:
            managed.reader.join(2.0)
        return code

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every process, last started first."""
        for name in reversed(list(self._processes)):
            self.stop(name, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.stop_all(timeout)
        with self._lock:
            self._closed.set()  # before the fork server stops: that is no crash to recover from
            self._stop_fork_servers(timeout)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------- queries

    def get(self, name: str) -> ManagedProcess:
        try:
            return self._processes[name]
        except KeyError:
            raise KeyError(f"no process named {name!r}; known: {list(self._processes)}") from None

    @property
    def names(self) -> list[str]:
        return list(self._processes)

    def log_path(self, name: str) -> Path | None:
        return self.get(name).log_path

    def logs(self, name: str) -> str:
        """Everything `name` printed (all its runs, from the log file), else the recent lines."""
        managed = self.get(name)
        if managed.log_path is not None and managed.log_path.exists():
            return managed.log_path.read_text(encoding="utf-8", errors="replace")
        return managed.tail(self.tail_lines)

    def wait_for_death(self, timeout: float | None = None) -> ProcessExit | None:
        """Block until a process dies unexpectedly (each death is returned once)."""
        try:
            return self._death_queue.get(timeout=timeout)
        except queue.Empty:
            return None

    # -------------------------------------------------------------- threads

    def _forward_output(self, managed: ManagedProcess) -> None:
        assert managed.popen.stdout is not None
        log = managed.log_path.open("a", encoding="utf-8") if managed.log_path else None
        try:
            for raw in iter(managed.popen.stdout.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                managed.recent.append(line)
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.echo:
                    self._write(self.out, f"{self._prefix(managed.name)} {line}\n")
        finally:
            managed.popen.stdout.close()
            if log is not None:
                log.close()

    def _watch(self) -> None:
        while not self._closed.is_set():
            for server in list(self._fork_servers):
                if not server.stopping and not self._closed.is_set() and server.process.poll() is not None:
                    self._fork_server_died(server)
            with self._lock:
                candidates = [
                    m
                    for m in self._processes.values()
                    if not m.reported and not m.stopping and m.popen.poll() is not None
                    # Its fork server died: the next round restarts both.
                    and not getattr(m.popen, "lost_with_server", False)
                ]
            for managed in candidates:
                if managed.stopping:  # stop() raced with us
                    continue
                managed.reported = True
                # Workers it forked are useless now and would keep our output pipe open.
                try:
                    os.killpg(managed.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if managed.reader is not None:
                    managed.reader.join(2.0)  # collect its last words first
                self._report_death(managed)
            self._closed.wait(0.1)

    def _report_death(self, managed: ManagedProcess, record: bool = True) -> None:
        death = ProcessExit(
            name=managed.name,
            pid=managed.pid,
            returncode=managed.popen.returncode,
            last_lines=tuple(list(managed.recent)[-30:]),
        )
        bar = "!" * 72
        lines = [
            bar,
            f"!! [{death.name}] {death.description} (pid {death.pid}) -- it is NOT running now",
        ]
        if managed.log_path is not None:
            lines.append(f"!! full log: {managed.log_path}")
        lines.append("!! last lines:" if death.last_lines else "!! (it printed nothing)")
        lines += [f"!!   {line}" for line in death.last_lines]
        lines.append(bar)
        text = "\n".join(lines) + "\n"
        if getattr(self.report_to, "isatty", lambda: False)() and not os.environ.get("NO_COLOR"):
            text = f"\x1b[1;31m{text}\x1b[0m"
        self._write(self.report_to, text)
        if not record:
            return
        self.deaths.append(death)
        self._death_queue.put(death)
        if self.on_death is not None:
            self.on_death(death)
