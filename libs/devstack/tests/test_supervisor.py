import io
import sys

from tessera_devstack.supervisor import Supervisor


def test_a_dying_process_is_reported_with_its_exit_code_and_last_lines(tmp_path):
    out, report = io.StringIO(), io.StringIO()
    supervisor = Supervisor(log_dir=tmp_path, out=out, report_to=report)
    try:
        supervisor.start(
            "audit-log",
            [
                sys.executable,
                "-c",
                "print('booting'); print('oops', flush=True); raise SystemExit(3)",
            ],
        )
        death = supervisor.wait_for_death(timeout=10)
    finally:
        supervisor.close()

    assert death is not None
    assert (death.name, death.returncode) == ("audit-log", 3)
    assert death.last_lines == ("booting", "oops")
    assert "[audit-log] exited with code 3" in report.getvalue()
    assert "!!   oops" in report.getvalue()
    assert "[audit-log] booting" in out.getvalue()
    assert "oops" in (tmp_path / "audit-log.log").read_text()
    assert supervisor.deaths == [death]


def test_stopping_on_purpose_is_not_reported_as_a_crash(tmp_path):
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    report = io.StringIO()
    supervisor = Supervisor(log_dir=tmp_path, echo=False, report_to=report)
    first = supervisor.start("first", sleeper)
    second = supervisor.start("second", sleeper)
    supervisor.close(timeout=5)

    assert not first.is_running() and not second.is_running()
    assert supervisor.wait_for_death(timeout=0.3) is None
    assert report.getvalue() == ""
    # stopped by SIGTERM, not killed
    assert first.popen.returncode == second.popen.returncode == -15
