"""The admin step: one PostgreSQL role per service, owning its schema and reaching no other.

Run with an admin DSN (a superuser, or a role with CREATEROLE that owns the database) by
`make run`, the test harness, or a migration job before the services start:

    DATABASE_URL=<admin dsn> TESSERA_IDENTITY_DATABASE_URL=<identity's dsn> ... \\
        python -m tessera_kit.provision

Each service DSN names the service's role and password; the role is created (or its
password reset), made owner of the service's schema and of everything already in it,
and granted nothing else: CONNECT and TEMPORARY on the database, no CREATE anywhere but
its schema, no USAGE on another service's schema. The services then connect with their
own DSN only. Idempotent: safe to run on every deployment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import asyncpg

from tessera_kit.access import ServiceAccess, database_services, service_access


def database_url_variable(service: str) -> str:
    """Where the migration job finds a service's DSN, e.g. TESSERA_AUDIT_LOG_DATABASE_URL."""
    return f"TESSERA_{service.upper().replace('-', '_')}_DATABASE_URL"


def role_name(database: str, service: str) -> str:
    """The role a local stack gives a service: one per database, as roles are server-wide."""
    return f"{database}_{service_access(service).schema}"


def service_dsn(admin_dsn: str, role: str, password: str) -> str:
    """`admin_dsn` with the service's role and password in place of the admin's."""
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"))


def credentials_of(dsn: str) -> tuple[str, str]:
    parts = urlsplit(dsn)
    if not parts.username or parts.password is None:
        raise ValueError("a service DSN must carry its role and password")
    return unquote(parts.username), unquote(parts.password)


async def _execute(conn: asyncpg.Connection, template: str, *values: str) -> None:
    """DDL takes no bind parameters: the server quotes the names and literals (format %I/%L)."""
    statement = await conn.fetchval(f"SELECT format($1, {', '.join(f'${i + 2}::text' for i in range(len(values)))})",
                                    template, *values)
    await conn.execute(statement)


async def provision_service(conn: asyncpg.Connection, entry: ServiceAccess, role: str, password: str) -> None:
    database = await conn.fetchval("SELECT current_database()")
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    await _execute(
        conn,
        ("ALTER" if exists else "CREATE") + " ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
        " NOREPLICATION NOBYPASSRLS PASSWORD %L",
        role, password,
    )
    await _execute(conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", database)
    await _execute(conn, "GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I", database, role)
    await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    for extension in entry.extensions:
        try:
            await _execute(conn, "CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA public", extension)
        except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
            pass  # created concurrently
    schema = entry.schema
    await _execute(conn, "CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I", schema, role)
    await _execute(conn, "ALTER SCHEMA %I OWNER TO %I", schema, role)
    await _execute(conn, "REVOKE ALL ON SCHEMA %I FROM PUBLIC", schema)
    await _hand_over_objects(conn, schema, role)


async def _hand_over_objects(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """Tables, views, sequences and functions made before the role existed (a stack that
    ran with one shared DSN) become the role's. Sequences owned by a column follow their table."""
    relations = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')"
        " AND pg_get_userbyid(c.relowner) <> $2"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "   AND d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')",
        schema, role,
    )
    for row in relations:
        await _execute(conn, "ALTER TABLE %I.%I OWNER TO %I", schema, row["relname"], role)
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND pg_get_userbyid(p.proowner) <> $2",
        schema, role,
    )
    for row in functions:
        # regprocedure text is already a quoted, schema-qualified signature.
        await _execute(conn, f"ALTER ROUTINE {row['signature']} OWNER TO %I", role)


async def provision(admin_dsn: str, service_dsns: Mapping[str, str]) -> None:
    """Create (or update) the role and schema of each service, from its DSN's credentials."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        # Two stacks provisioning one server at once would race on the same catalog rows.
        await conn.execute("SELECT pg_advisory_lock(hashtext('tessera-provision'))")
        try:
            for service, dsn in service_dsns.items():
                role, password = credentials_of(dsn)
                async with conn.transaction():
                    await provision_service(conn, service_access(service), role, password)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('tessera-provision'))")
    finally:
        await conn.close()


async def drop_roles(admin_dsn: str, roles: list[str]) -> None:
    """Remove the roles, and what they own in the DSN's database (test teardown)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        for role in roles:
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await _execute(conn, "DROP OWNED BY %I CASCADE", role)
                await _execute(conn, "DROP ROLE %I", role)
    finally:
        await conn.close()


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    admin_dsn = environ.get("DATABASE_URL")
    if not admin_dsn:
        print("DATABASE_URL (the admin DSN) is not set", file=sys.stderr)
        return 2
    dsns = {
        entry.name: environ[database_url_variable(entry.name)]
        for entry in database_services()
        if environ.get(database_url_variable(entry.name))
    }
    if not dsns:
        print("no TESSERA_<SERVICE>_DATABASE_URL is set: nothing to provision", file=sys.stderr)
        return 2
    asyncio.run(provision(admin_dsn, dsns))
    print(f"provisioned: {', '.join(dsns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
