"""Run child processes, forward their output line by line, and say so loudly when one dies.

Each process gets its own session (so a Ctrl-C in the terminal reaches only us and we stop the
children in order), its stdout+stderr merged into one pipe read by a thread that
- keeps the last lines in memory (for error messages),
- appends them to `<log_dir>/<name>.log` if a log dir is given,
- echoes them as `[name] line` to our stdout if `echo` is on.
A monitor thread notices a process that exits without being asked to and reports it on stderr
(name, exit code, last lines), records it in `deaths` and calls `on_death`.
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

from .processes import die_with_parent, stop_process, track

_COLORS = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94]


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


class ManagedProcess:
    def __init__(
        self,
        name: str,
        popen: subprocess.Popen,
        log_path: Path | None,
        tail_lines: int,
        stop_signal: int = signal.SIGTERM,
    ):
        self.name = name
        self.popen = popen
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

    def is_running(self) -> bool:
        return self.popen.poll() is None

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
            color = _COLORS[list(self._processes).index(name) % len(_COLORS)]
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
    ) -> ManagedProcess:
        """Start `argv` as `name` (replacing a previous, stopped process of that name)."""
        with self._lock:
            previous = self._processes.get(name)
            if previous is not None and previous.is_running():
                raise RuntimeError(f"{name} is already running (pid {previous.pid})")
            log_path = self.log_dir / f"{name}.log" if self.log_dir is not None else None
            popen = subprocess.Popen(
                list(argv),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(stop_signal),
            )
            track(popen, stop_signal, whole_group=True)
            managed = ManagedProcess(name, popen, log_path, self.tail_lines, stop_signal)
            self._processes.pop(name, None)
            self._processes[name] = managed
            if log_path is not None:
                command = shlex.join(argv).replace("\n", "\\n")
                with log_path.open("a", encoding="utf-8") as log:
                    log.write(
                        f"--- {time.strftime('%H:%M:%S')} started pid {popen.pid}: {command}\n"
                    )
            managed.reader = threading.Thread(
                target=self._forward_output, args=(managed,), name=f"output-{name}", daemon=True
            )
            managed.reader.start()
            return managed

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
        self._closed.set()

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
            with self._lock:
                candidates = [
                    m
                    for m in self._processes.values()
                    if not m.reported and not m.stopping and m.popen.poll() is not None
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

    def _report_death(self, managed: ManagedProcess) -> None:
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
        self.deaths.append(death)
        self._death_queue.put(death)
        if self.on_death is not None:
            self.on_death(death)
