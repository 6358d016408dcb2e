import base64
import io
import sys
import textwrap

import pytest
from tessera_devstack.ports import free_ports
from tessera_devstack.services import (
    SERVICES,
    ServiceSpec,
    ServiceStack,
    ServiceStartError,
    available_services,
)
from tessera_devstack.supervisor import Supervisor

# Stands in for `python -m tessera_kit.serve <app>`: /health/ready answers 200 unless told to die.
FAKE_SERVICE = textwrap.dedent(
    """
    import os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    if os.environ.get("FAKE_DIE"):
        print("cannot connect to the database", flush=True)
        sys.exit(4)
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path.startswith("/health/") else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    print("listening on", os.environ["PORT"], flush=True)
    HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Health).serve_forever()
    """
)


class FakeStack(ServiceStack):
    def command_for(self, name):
        return [sys.executable, "-c", FAKE_SERVICE]


def _stack(tmp_path, names, **kwargs):
    specs = [ServiceSpec(name, 0) for name in names]
    supervisor = Supervisor(log_dir=tmp_path, echo=False, report_to=io.StringIO())
    return FakeStack(
        supervisor=supervisor,
        services=specs,
        ports=dict(zip(names, free_ports(len(names)), strict=True)),
        database_url="postgresql://u:p@127.0.0.1:1/db",
        nats_url="nats://127.0.0.1:2",
        namespace="tabc",
        **kwargs,
    )


def test_the_service_table():
    assert [(s.name, s.default_port) for s in SERVICES] == [
        ("gateway", 3001),
        ("identity", 3101),
        ("rbac", 3102),
        ("connectors", 3103),
        ("experience", 3104),
        ("audit-log", 3105),
        ("webhook-dispatcher", 3106),
    ]
    audit = SERVICES[5]
    assert audit.app == "tessera_audit_log.main:app"
    assert audit.url_variable == "TESSERA_AUDIT_LOG_URL"
    assert not ServiceSpec("not-installed-at-all", 1).is_available()
    names = [s.name for s in available_services()]
    assert "gateway" not in names[:-1]  # if present, the gateway comes last


def test_environment_of_services_and_gateway(tmp_path):
    stack = _stack(tmp_path, ["audit-log", "gateway"], extra_env={"TESSERA_DEV_AUTH": "true"})
    audit = stack.environment_for("audit-log")
    gateway = stack.environment_for("gateway")
    assert audit["PORT"] == str(stack.ports["audit-log"])
    assert audit["HOST"] == "127.0.0.1"
    assert audit["TESSERA_NAMESPACE"] == "tabc"
    assert audit["ENDPOINT"] == stack.url == f"http://localhost:{stack.ports['gateway']}"
    assert audit["TESSERA_DEV_AUTH"] == "true"
    assert "TESSERA_AUDIT_LOG_URL" not in audit
    assert gateway["TESSERA_AUDIT_LOG_URL"] == f"http://127.0.0.1:{stack.ports['audit-log']}"
    assert stack.command_for is not None
    # One internal key per stack, the same for the gateway and every service, 32 random bytes.
    assert audit["TESSERA_INTERNAL_KEY"] == gateway["TESSERA_INTERNAL_KEY"] == stack.internal_key
    assert len(base64.urlsafe_b64decode(stack.internal_key + "=")) == 32
    assert _stack(tmp_path, ["audit-log"]).internal_key != stack.internal_key


def test_replicas_are_processes_of_their_own_and_the_gateway_lists_them_all(tmp_path):
    stack = _stack(tmp_path, ["audit-log", "gateway"], replicas=2,
                   service_env={"audit-log": {"DATABASE_URL": "postgresql://tessera_audit_log@h/db"}})
    assert stack.names == ["audit-log", "audit-log-2", "gateway"]  # one gateway
    assert stack.replica_names("audit-log") == ["audit-log", "audit-log-2"]
    assert stack.spec("audit-log-2").name == "audit-log"
    first, second = stack.environment_for("audit-log"), stack.environment_for("audit-log-2")
    assert first["PORT"] != second["PORT"] and second["PORT"] == str(stack.ports["audit-log-2"])
    assert first["DATABASE_URL"] == second["DATABASE_URL"] == "postgresql://tessera_audit_log@h/db"
    assert stack.environment_for("gateway")["TESSERA_AUDIT_LOG_URL"] == (
        f"http://127.0.0.1:{stack.ports['audit-log']},http://127.0.0.1:{stack.ports['audit-log-2']}")
    stack.start_all(timeout=30)
    try:
        assert all(stack.is_ready(name) for name in stack.names)
    finally:
        stack.stop_all()


def test_start_wait_ready_stop_and_restart_one_service(tmp_path):
    stack = _stack(tmp_path, ["audit-log", "gateway"])
    try:
        stack.start_all(timeout=20)
        assert stack.is_ready("audit-log") and stack.is_ready("gateway")
        stack.stop_service("audit-log")
        assert not stack.is_ready("audit-log")
        stack.start_service("audit-log", timeout=20)
        assert stack.is_ready("audit-log")
        starts = [
            line for line in stack.logs("audit-log").splitlines() if line.startswith("listening")
        ]
        assert len(starts) == 2
        assert stack.supervisor.deaths == []
    finally:
        stack.stop_all()
        stack.supervisor.close()


def test_a_service_dying_at_start_fails_with_its_last_lines(tmp_path):
    stack = _stack(tmp_path, ["identity"], extra_env={"FAKE_DIE": "1"})
    try:
        with pytest.raises(ServiceStartError, match="(?s)exited with code 4.*cannot connect"):
            stack.start_all(timeout=20)
    finally:
        stack.supervisor.close()
