import json
import os
import signal
import subprocess
import sys
import time

import httpx

from tessera_devstack import run
from tessera_devstack.admin_client import AdminClient, load_or_create_admin_client
from tessera_devstack.ports import free_ports
from tessera_devstack.services import service_spec


def test_admin_client_is_generated_once_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.delenv("TESSERA_ADMIN_CLIENT_ID", raising=False)
    monkeypatch.delenv("TESSERA_ADMIN_CLIENT_SECRET", raising=False)
    path = tmp_path / "admin-client.json"
    first = load_or_create_admin_client(path)
    assert len(first.id) == 21 and len(first.secret) == 32
    assert (first.id + first.secret).isalnum() and (first.id + first.secret).islower()
    assert load_or_create_admin_client(path) == first
    assert json.loads(path.read_text()) == {"id": first.id, "secret": first.secret}
    monkeypatch.setenv("TESSERA_ADMIN_CLIENT_ID", "given-id")
    monkeypatch.setenv("TESSERA_ADMIN_CLIENT_SECRET", "given-secret")
    assert load_or_create_admin_client(path) == AdminClient("given-id", "given-secret")


def test_run_starts_postgres_and_nats_prints_the_banner_and_cleans_up(
    tmp_path, monkeypatch, capsys
):
    for variable in ("DATABASE_URL", "NATS_URL", "PORT", "ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(run, "available_services", lambda: [])  # services are others' business
    monkeypatch.setattr(run.Supervisor, "wait_for_death", _press_ctrl_c)

    assert run.main(["--state-dir", str(tmp_path / "state")]) == 0

    printed = capsys.readouterr().out
    admin = json.loads((tmp_path / "state" / "admin-client.json").read_text())
    assert "Tessera is running at http://localhost:3001" in printed
    assert f'curl -s -u "{admin["id"]}:{admin["secret"]}"' in printed
    assert "postgresql://tessera:tessera@127.0.0.1:" in printed and "/tessera" in printed
    assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()
    assert (tmp_path / "state" / "nats" / "jetstream").is_dir()
    assert (
        "database system is shut down" in (tmp_path / "state" / "logs" / "postgres.log").read_text()
    )


def _press_ctrl_c(self, timeout=None):
    raise KeyboardInterrupt


def test_ports_are_free_ones_except_the_gateway_and_pinned_ones():
    specs = [service_spec("identity"), service_spec("audit-log"), service_spec("gateway")]
    ports = run.choose_ports(specs, {"TESSERA_AUDIT_LOG_PORT": "4105"})
    assert ports["gateway"] == 3001 and ports["audit-log"] == 4105
    assert ports["identity"] not in (3101, 3001, 4105)
    ports = run.choose_ports(specs, {"PORT": "4001"})
    assert ports["gateway"] == 4001
    assert len(set(ports.values())) == 3
    assert run.port_variable(service_spec("webhook-dispatcher")) == "TESSERA_WEBHOOK_DISPATCHER_PORT"


# `make run` with two real services (the others are not needed to show the ports).
TWO_SERVICE_RUN = """
import sys
from tessera_devstack import run
from tessera_devstack.services import service_spec
run.available_services = lambda: [service_spec("audit-log"), service_spec("gateway")]
sys.exit(run.main(sys.argv[1:]))
"""


def test_two_stacks_run_side_by_side_on_one_machine(tmp_path):
    """Two checkouts' `make run` at once: only the gateway port differs by configuration."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "NATS_URL", "ENDPOINT") and not k.startswith("TESSERA_")}
    gateway_ports = free_ports(2)
    stacks = []
    try:
        for n, port in enumerate(gateway_ports):
            log = open(tmp_path / f"stack{n}.out", "w+")
            process = subprocess.Popen(
                [sys.executable, "-c", TWO_SERVICE_RUN, "--exit-on-crash",
                 "--state-dir", str(tmp_path / f"state{n}")],
                env={**environ, "PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT,
            )
            stacks.append((process, log, port))
            _wait_for_banner(process, log)
        for process, log, port in stacks:
            assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
            # audit-log answers through each gateway (a 401 from the management check would
            # come from the gateway alone; its OpenAPI document comes from the upstream)
            document = httpx.get(f"http://127.0.0.1:{port}/api/swagger.json", timeout=10).json()
            assert any(path.startswith("/api/logs") for path in document["paths"])
    finally:
        for process, log, port in stacks:
            process.send_signal(signal.SIGINT)
        for process, log, port in stacks:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    for process, log, port in stacks:
        assert process.returncode == 0, (tmp_path / "stack0.out").read_text()[-3000:]


def _wait_for_banner(process, log, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        text = log.read()
        if "Tessera is running at" in text:
            return
        if process.poll() is not None:
            raise AssertionError(f"make run exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("make run did not print its banner")
