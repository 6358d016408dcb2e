"""One PostgreSQL role per service: it owns its schema and reaches no other."""

import secrets
from urllib.parse import urlsplit

import asyncpg
import pytest

from tessera_kit.db import create_pool, migrate
from tessera_kit.provision import drop_roles, provision, role_name, service_dsn


@pytest.fixture
async def roles(database_url):
    database = urlsplit(database_url).path.lstrip("/")
    dsns = {
        service: service_dsn(database_url, role_name(database, service), secrets.token_urlsafe(24))
        for service in ("identity", "rbac")
    }
    await provision(database_url, dsns)
    yield dsns
    await drop_roles(database_url, [role_name(database, s) for s in dsns])


async def test_a_service_role_owns_its_schema_and_cannot_read_another(roles):
    identity = await create_pool(roles["identity"], "identity", max_size=1)
    try:
        applied = await migrate(identity, "identity", None)
        assert applied and all(name.startswith("kit/") for name in applied)
        async with identity.acquire() as conn:
            await conn.execute("CREATE TABLE users (id text PRIMARY KEY, password text)")
            await conn.execute("INSERT INTO users VALUES ('u1', 'secret')")
            assert await conn.fetchval("SELECT password FROM identity.users") == "secret"
    finally:
        await identity.close()

    rbac = await asyncpg.connect(roles["rbac"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema identity"):
            await rbac.fetch("SELECT * FROM identity.users")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await rbac.execute("CREATE SCHEMA elsewhere")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await rbac.execute("CREATE TABLE public.smuggled (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await rbac.execute("CREATE TABLE identity.smuggled (x int)")
        # Its own schema is its to use.
        await rbac.execute("CREATE TABLE rbac.roles (id text)")
    finally:
        await rbac.close()


async def test_provisioning_again_resets_the_password_and_hands_over_old_objects(database_url, roles):
    # A stack that ran on the shared DSN left a table owned by the admin in rbac's schema.
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("CREATE TABLE rbac.legacy (id serial PRIMARY KEY, name text)")
    finally:
        await admin.close()
    new_dsn = service_dsn(roles["rbac"], urlsplit(roles["rbac"]).username, secrets.token_urlsafe(24))
    await provision(database_url, {"rbac": new_dsn})

    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(roles["rbac"])
    rbac = await asyncpg.connect(new_dsn)
    try:
        await rbac.execute("INSERT INTO rbac.legacy (name) VALUES ('kept')")
        await rbac.execute("ALTER TABLE rbac.legacy ADD COLUMN note text")  # only an owner may
    finally:
        await rbac.close()


async def test_a_role_without_its_schema_is_told_to_run_the_admin_step(database_url, roles):
    with pytest.raises(RuntimeError, match="admin step"):
        await create_pool(roles["rbac"], "not_provisioned", max_size=1)
