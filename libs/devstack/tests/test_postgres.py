import asyncpg
import pytest
from tessera_devstack.postgres import (
    LOCAL_SETTINGS,
    connections_for,
    create_database,
    database_dsn,
    drop_database,
    start_postgres,
)
from tessera_devstack.processes import DirectoryInUse


async def _scalar(dsn: str, query: str):
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def test_start_create_query_and_restart_over_a_stale_pid_file(tmp_path):
    data_dir = tmp_path / "pg"
    server = start_postgres(data_dir, fast_unsafe=True)
    try:
        assert server.dsn == f"postgresql://tessera:tessera@127.0.0.1:{server.port}/postgres"
        dsn = create_database(server.dsn, "devstack_check")
        assert create_database(server.dsn, "devstack_check") == dsn  # "create if missing"
        connection = await asyncpg.connect(dsn)
        await connection.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('hi')")
        await connection.close()
    finally:
        server.stop()
    assert not server.is_running()

    # a crash leaves postmaster.pid behind; its pid may even belong to another process now
    (data_dir / "postmaster.pid").write_text(
        f"1\n{data_dir}\n0\n{server.port}\n\n127.0.0.1\n  0 0\nready   \n"
    )
    restarted = start_postgres(data_dir, port=server.port, fast_unsafe=True)
    try:
        assert (
            await _scalar(database_dsn(restarted.dsn, "devstack_check"), "SELECT value FROM kept")
            == "hi"
        )
    finally:
        restarted.stop()


def test_a_second_owner_is_refused_and_an_orphan_is_replaced(tmp_path):
    first = start_postgres(tmp_path / "pg", fast_unsafe=True)
    try:
        with pytest.raises(DirectoryInUse):
            start_postgres(tmp_path / "pg")
        # the owner dies without stopping its server (simulated: drop its lock only)
        first._lock.release()
        second = start_postgres(tmp_path / "pg", fast_unsafe=True)
        assert not first.is_running()
        second.stop()
    finally:
        first.stop()


async def test_database_url_fixture_is_this_runs_database(database_url, run_id):
    assert await _scalar(database_url, "SELECT current_database()") == f"t_{run_id}"


async def test_fresh_databases_are_empty_and_distinct(fresh_database, postgres_dsn):
    first, second = fresh_database(), fresh_database()
    assert first != second
    assert await _scalar(first, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    drop_database(postgres_dsn, first.rsplit("/", 1)[1])  # dropping twice at teardown is fine


async def test_the_local_server_runs_with_the_smaller_shared_memory_settings(postgres_dsn):
    """Sized for local stacks (idle memory), not PostgreSQL's defaults."""
    shown = {name: await _scalar(postgres_dsn, f"SHOW {name}") for name in LOCAL_SETTINGS}
    assert shown == {"max_locks_per_transaction": "32", "max_pred_locks_per_transaction": "16",
                     "wal_buffers": "2MB", "max_logical_replication_workers": "0",
                     "max_wal_senders": "0", "max_replication_slots": "0"}
    # ... and so no logical replication launcher among its processes.
    assert await _scalar(postgres_dsn, "SELECT count(*) FROM pg_stat_activity"
                                       " WHERE backend_type = 'logical replication launcher'") == 0
    assert await _scalar(postgres_dsn, "SHOW max_connections") == "300"
    if int(await _scalar(postgres_dsn, "SHOW server_version_num")) >= 180000:
        assert await _scalar(postgres_dsn, "SHOW io_max_concurrency") == "16"
        assert await _scalar(postgres_dsn, "SHOW io_method") == "sync"
        assert await _scalar(postgres_dsn, "SHOW autovacuum_worker_slots") == "3"


STACK = ["identity", "rbac", "connectors", "experience", "audit-log", "webhook-dispatcher", "gateway"]


def test_a_stacks_server_has_room_for_every_pool_full_and_no_more():
    # Six services hold a pool (the gateway none): 10 each, 6 beside it, 23 for clients.
    assert connections_for(STACK, environ={}) == 6 * 16 + 23 == 119
    assert connections_for(STACK, replicas=2, environ={}) == 2 * 6 * 16 + 23
    assert connections_for(STACK, environ={"TESSERA_DB_POOL_SIZE": "30"}) == 6 * 36 + 23
    assert connections_for(["gateway"], environ={}) == 100  # never below PostgreSQL's default


async def test_a_server_starts_with_the_connections_it_is_given(tmp_path):
    server = start_postgres(tmp_path / "pg", fast_unsafe=True, max_connections=119)
    try:
        assert await _scalar(server.dsn, "SHOW max_connections") == "119"
    finally:
        server.stop()
