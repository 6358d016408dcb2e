import json

from tessera_devstack import run
from tessera_devstack.admin_client import AdminClient, load_or_create_admin_client


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
