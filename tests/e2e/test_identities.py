"""Every service of the stack on its own PostgreSQL role and NATS user."""

from urllib.parse import urlsplit

import asyncpg
import nats
import pytest

from tessera_kit.access import service_access

pytestmark = pytest.mark.e2e


def _database_services(stack) -> list[str]:
    return [name for name in stack.names if service_access(name).uses_database]


async def test_each_service_is_connected_as_its_own_role(stack):
    roles = {name: urlsplit(stack.service_env[name]["DATABASE_URL"]).username
             for name in _database_services(stack)}
    assert len(set(roles.values())) == len(roles)
    assert urlsplit(stack.env["DATABASE_URL"]).username not in roles.values()
    admin = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        connected = {row["usename"] for row in await admin.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()")}
        schema_owners = dict(await admin.fetch(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY($1)",
            [service_access(name).schema for name in roles]))
    finally:
        await admin.close()
    assert set(roles.values()) <= connected
    assert schema_owners == {service_access(name).schema: role for name, role in roles.items()}


async def test_rbacs_role_cannot_read_identitys_users(stack):
    if not {"rbac", "identity"} <= set(stack.names):
        pytest.skip("needs rbac and identity")
    rbac = await asyncpg.connect(stack.service_env["rbac"]["DATABASE_URL"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema identity"):
            await rbac.fetch("SELECT * FROM identity.users")
        assert await rbac.fetchval("SELECT count(*) >= 0 FROM rbac.schema_migrations")
    finally:
        await rbac.close()


async def test_the_stacks_nats_refuses_a_client_without_credentials(stack):
    first = stack.service_env.get(_database_services(stack)[0], {})
    if "NATS_URL" not in first:
        pytest.skip("NATS_URL names a server this session does not configure")
    plain = first["NATS_URL"]
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(plain, allow_reconnect=False, max_reconnect_attempts=0)


async def test_no_service_is_refused_anything_by_nats(stack):
    """What a service does on NATS is all in tessera_kit.access: the server refused nothing
    (a refused subscription or publish only shows as a warning in the service's log)."""
    refused = {name: [line for line in stack.logs(name).splitlines() if "permissions violation" in line]
               for name in stack.names}
    assert {name: lines for name, lines in refused.items() if lines} == {}
