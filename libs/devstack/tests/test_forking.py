"""Processes forked from the Supervisor's fork server (tessera_kit.forkserver): each is a
process of its own, watched, stopped, killed and restarted as an exec'd one would be."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from tessera_devstack import forking
from tessera_devstack.supervisor import FORK_SERVER, Supervisor

pytestmark = pytest.mark.skipif(not forking.supported(), reason="the fork server needs Linux pidfds")

# A stand-in service, run as `python -m probe <args>` from its folder: says who it is, then waits.
PROBE = textwrap.dedent(
    """
    import json, os, random, signal, sys, threading, time
    print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                      "sid": os.getsid(0), "argv": sys.argv[1:], "cwd": os.getcwd(),
                      "path0": sys.path[0], "env": os.environ.get("PROBE_VALUE"),
                      "secret": os.environ.get("OTHER_SECRET"), "random": random.random(),
                      "threads": threading.active_count(), "preloaded": "litestar" in sys.modules,
                      "main": __name__}), flush=True)
    if "--exit" in sys.argv:
        print("oops", file=sys.stderr, flush=True)
        sys.exit(int(sys.argv[-1]))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0) if "--graceful" in sys.argv else sys.exit(7))
    while True:
        time.sleep(0.2)
    """
)


@pytest.fixture
def probe_dir(tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


@pytest.fixture
def supervisor(tmp_path):
    report = io.StringIO()
    supervisor = Supervisor(log_dir=tmp_path / "logs", echo=False, report_to=report)
    supervisor.report = report
    yield supervisor
    supervisor.close(timeout=5)


def _start(supervisor, name, probe_dir, *args, env=None):
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return supervisor.start(name, [sys.executable, "-m", "probe", *args], env=environment,
                            cwd=probe_dir, fork=True)


def _said(supervisor, name, timeout=60.0) -> dict:
    """The probe's first line (its JSON), from the log of its latest run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in supervisor.get(name).recent if line.startswith("{")]
        if lines:
            return json.loads(lines[-1])
        time.sleep(0.05)
    raise AssertionError(f"{name} said nothing: {supervisor.logs(name)}")


def _gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_each_forked_process_is_its_own_with_its_own_pid_environment_and_output(supervisor, probe_dir):
    first = _start(supervisor, "first", probe_dir, "--one", env={"PROBE_VALUE": "a", "OTHER_SECRET": "s1"})
    second = _start(supervisor, "second", probe_dir, "--two", env={"PROBE_VALUE": "b"})
    a, b = _said(supervisor, "first"), _said(supervisor, "second")

    server = supervisor.fork_server_pid
    assert first.forked and second.forked and server is not None
    assert a["pid"] == first.pid != b["pid"] == second.pid
    assert a["ppid"] == b["ppid"] == server  # forked, not exec'd
    # Own session and process group (killpg reaches it and what it forks), as start_new_session.
    assert (a["pgid"], a["sid"]) == (first.pid, first.pid) and (b["pgid"], b["sid"]) == (second.pid, second.pid)
    assert (a["env"], a["secret"], b["env"], b["secret"]) == ("a", "s1", "b", None)
    assert a["argv"] == ["--one"] and b["argv"] == ["--two"] and a["main"] == "__main__"
    assert a["cwd"] == a["path0"] == str(probe_dir)
    assert a["preloaded"] and a["threads"] == 1
    assert a["random"] != b["random"]  # `random` reseeded in each child
    # The fork server holds no service's environment (their credentials come with each fork).
    assert "OTHER_SECRET" not in psutil.Process(server).environ()
    assert "started pid" in supervisor.logs("first") and f"fork-server, pid {server}" in supervisor.logs("first")
    # ps, pgrep -f and the bench's labels see the command it was started for, not the server's.
    assert psutil.Process(first.pid).cmdline() == [sys.executable, "-m", "probe", "--one"]
    assert psutil.Process(server).cmdline()[1:3] == ["-m", "tessera_kit.forkserver"]
    assert len(psutil.Process(server).cmdline()) == 4  # the room it keeps for them is not shown


def test_a_forked_process_that_exits_is_reported_with_its_code_and_last_lines(supervisor, probe_dir):
    _start(supervisor, "failing", probe_dir, "--exit", "3")
    death = supervisor.wait_for_death(timeout=60)
    assert death is not None and (death.name, death.returncode) == ("failing", 3)
    assert death.last_lines[-1] == "oops"
    assert "[failing] exited with code 3" in supervisor.report.getvalue()


def test_a_forked_service_runs_its_preloaded_module_as_python_m_would_without_a_warning(supervisor, tmp_path):
    # tessera_kit.serve is imported by the preload: run as __main__ beside that copy, runpy
    # printed a RuntimeWarning ("found in sys.modules ... unpredictable behaviour") at the
    # top of every service's log.
    supervisor.start("serve", [sys.executable, "-m", "tessera_kit.serve"], cwd=tmp_path, fork=True,
                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
    death = supervisor.wait_for_death(timeout=60)
    assert death is not None and (death.name, death.returncode) == ("serve", 1)
    assert death.last_lines == ("usage: python -m tessera_kit.serve <module>:<app>",), death.last_lines



def test_a_forked_python_m_of_a_preloaded_package_runs_its_main(supervisor, tmp_path):
    # A package the preload imported (asyncio, whose __main__ is its REPL) stays in sys.modules:
    # dropped, runpy would import it anew beside its submodules and fail half-way.
    supervisor.start("repl", [sys.executable, "-m", "asyncio"], cwd=tmp_path, fork=True,
                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
    death = supervisor.wait_for_death(timeout=60)
    assert death is not None and (death.name, death.returncode) == ("repl", 0), death
    assert death.last_lines[0].startswith("asyncio REPL") and death.last_lines[-1] == "exiting asyncio REPL..."

def test_a_sigkilled_forked_process_is_noticed_and_can_be_started_again(supervisor, probe_dir):
    killed = _start(supervisor, "victim", probe_dir)
    bystander = _start(supervisor, "bystander", probe_dir)
    _said(supervisor, "victim"), _said(supervisor, "bystander")
    os.killpg(killed.pid, signal.SIGKILL)
    death = supervisor.wait_for_death(timeout=30)
    assert death is not None and (death.name, death.pid, death.returncode) == ("victim", killed.pid, -9)

    again = _start(supervisor, "victim", probe_dir)
    said = _said(supervisor, "victim")
    assert said["pid"] == again.pid != killed.pid and said["ppid"] == supervisor.fork_server_pid
    assert bystander.is_running() and supervisor.deaths == [death]


def test_stopping_a_forked_process_sends_its_stop_signal_and_is_no_crash(supervisor, probe_dir):
    graceful = _start(supervisor, "graceful", probe_dir, "--graceful")
    _said(supervisor, "graceful")
    assert supervisor.stop("graceful", timeout=10) == 0  # its SIGTERM handler exited 0
    assert not graceful.is_running() and _gone(graceful.pid)
    assert supervisor.wait_for_death(timeout=0.5) is None and supervisor.report.getvalue() == ""


def test_when_the_fork_server_dies_it_and_its_processes_are_started_again(supervisor, probe_dir):
    first = _start(supervisor, "first", probe_dir)
    second = _start(supervisor, "second", probe_dir)
    old = [_said(supervisor, "first")["pid"], _said(supervisor, "second")["pid"]]
    server = supervisor.fork_server_pid

    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (supervisor.fork_server_restarts == 0 or any(
            supervisor.get(n).pid in old for n in ("first", "second"))):
        time.sleep(0.1)

    assert supervisor.fork_server_restarts == 1
    assert all(_gone(pid) for pid in old)  # died with it: no orphan left behind
    new_server = supervisor.fork_server_pid
    assert new_server not in (None, server)
    for name in ("first", "second"):
        said = _said(supervisor, name)
        assert said["pid"] == supervisor.get(name).pid not in old and said["ppid"] == new_server
    assert first.returncode == second.returncode == -9
    assert supervisor.deaths == []  # theirs was the server's death, and they run again
    assert f"[{FORK_SERVER}] killed by SIGKILL" in supervisor.report.getvalue()
    assert "forked again what died with it: first, second" in supervisor.report.getvalue()


def test_close_leaves_no_process_behind(tmp_path, probe_dir):
    supervisor = Supervisor(log_dir=tmp_path / "logs", echo=False, report_to=io.StringIO())
    processes = [_start(supervisor, name, probe_dir) for name in ("a", "b", "c")]
    for name in ("a", "b", "c"):
        _said(supervisor, name)
    server = supervisor.fork_server_pid
    supervisor.close(timeout=5)
    assert all(_gone(pid, timeout=1) for pid in [server, *(p.pid for p in processes)])
    assert [p.returncode for p in processes] == [7, 7, 7]  # each stopped with SIGTERM, in turn
    assert supervisor.deaths == []


# A supervisor in a process of its own, SIGKILLed: nothing it started may outlive it.
ORPHAN_CHECK = """
import json, os, sys, time
from tessera_devstack.supervisor import Supervisor
supervisor = Supervisor(echo=False)
env = {**os.environ, "PYTHONUNBUFFERED": "1"}
children = [supervisor.start(n, [sys.executable, "-m", "probe"], env=env, cwd=sys.argv[1], fork=True)
            for n in ("a", "b")]
while not all(any(l.startswith("{") for l in supervisor.get(n).recent) for n in ("a", "b")):
    time.sleep(0.05)
print(json.dumps([supervisor.fork_server_pid, *(c.pid for c in children)]), flush=True)
time.sleep(600)
"""


def test_a_killed_supervisor_takes_the_fork_server_and_its_processes_along(probe_dir):
    runner = subprocess.Popen([sys.executable, "-c", ORPHAN_CHECK, str(probe_dir)], stdout=subprocess.PIPE,
                              text=True)
    try:
        pids = json.loads(runner.stdout.readline())
        assert len(set(pids)) == 3 and all(psutil.pid_exists(pid) for pid in pids)
    finally:
        runner.kill()
        runner.wait()
    assert all(_gone(pid) for pid in pids)


def test_a_request_with_other_interpreter_start_variables_is_execd_instead(supervisor, probe_dir):
    _start(supervisor, "forked", probe_dir)
    _said(supervisor, "forked")
    execd = _start(supervisor, "execd", probe_dir, env={"PYTHONHASHSEED": "123"})
    said = _said(supervisor, "execd")
    assert not execd.forked and said["ppid"] == os.getpid() and not said["preloaded"]
    assert "not forked, exec'd: the fork server refused" in supervisor.logs("execd")


def test_a_released_fork_server_keeps_its_processes_and_later_ones_are_execd(tmp_path, probe_dir):
    supervisor = Supervisor(log_dir=tmp_path / "logs", echo=False, report_to=io.StringIO())
    try:
        victim, graceful = _start(supervisor, "victim", probe_dir), _start(supervisor, "graceful", probe_dir, "--graceful")
        _said(supervisor, "victim"), _said(supervisor, "graceful")
        server = supervisor.fork_server_pid
        preloaded_rss = psutil.Process(server).memory_info().rss

        os.killpg(victim.pid, signal.SIGKILL)  # exits while the server execs, or just before
        assert supervisor.release_fork_server()
        # The same process (its children's parent, their PR_SET_PDEATHSIG), without the preload.
        assert supervisor.fork_server_pid == server
        assert psutil.Process(server).memory_info().rss < preloaded_rss / 2
        assert psutil.Process(graceful.pid).ppid() == server
        assert "released its preload" in (tmp_path / "logs" / f"{FORK_SERVER}.log").read_text()
        assert supervisor.release_fork_server()  # a second time: nothing more to drop

        # It still reports deaths, and a stop ends in the process's own exit code.
        death = supervisor.wait_for_death(timeout=30)
        assert death is not None and (death.name, death.pid, death.returncode) == ("victim", victim.pid, -9)
        assert supervisor.stop("graceful", timeout=10) == 0

        # What starts now is exec'd, and says why; asked anyway, the server refuses to fork.
        again = _start(supervisor, "victim", probe_dir)
        said = _said(supervisor, "victim")
        assert not again.forked and said["pid"] == again.pid and said["ppid"] == os.getpid()
        assert "not forked, exec'd: the fork server was released" in supervisor.logs("victim")
        read_end, write_end = os.pipe()
        try:
            assert supervisor._fork_server.spawn("probe", [], env=dict(os.environ), cwd=str(probe_dir),
                                                 stop_signal=signal.SIGTERM, output=write_end) is None
        finally:
            os.close(read_end), os.close(write_end)
        assert "released" in supervisor._fork_server.refusal
    finally:
        supervisor.close(timeout=5)
    assert _gone(server, timeout=5) and _gone(again.pid, timeout=5)
    assert supervisor.deaths == [death]


def test_after_a_release_what_a_dying_fork_server_takes_along_is_execd_again(supervisor, probe_dir):
    first = _start(supervisor, "first", probe_dir)
    _said(supervisor, "first")
    assert supervisor.release_fork_server()
    released = supervisor.fork_server_pid

    os.kill(released, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and supervisor.get("first").pid == first.pid:
        time.sleep(0.1)
    said = _said(supervisor, "first")
    assert said["pid"] == supervisor.get("first").pid != first.pid
    assert said["ppid"] == os.getpid() and not said["preloaded"]  # exec'd, no new preload
    assert supervisor.fork_server_pid is None and _gone(first.pid)
    assert "not started again (it was released); exec'd again what died with it: first" in supervisor.report.getvalue()
    assert supervisor.deaths == []


def test_a_release_the_server_refuses_is_an_error_not_a_hang():
    ours, theirs = forking.ForkServerConnection.socket_pair()

    def refusing_server():
        theirs.send(json.dumps({"ready": 1, "modules": 0}).encode())
        request = json.loads(theirs.recv(1 << 16))
        theirs.send(json.dumps({"refused": request["release"], "error": "exec failed: no such file"}).encode())

    server = threading.Thread(target=refusing_server)
    server.start()
    connection = forking.ForkServerConnection(subprocess.Popen([sys.executable, "-c", "pass"]), ours)
    try:
        connection.wait_ready(10)
        with pytest.raises(forking.ForkServerError, match="was not released: exec failed"):
            connection.release(timeout=10)
    finally:
        server.join(10)
        theirs.close()
        connection.close()
