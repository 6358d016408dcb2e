"""identity serving two tenants: an OpenID Provider each (issuer, keys, clients), users kept
apart, the admin tenant's `admin-console` client and its Me API (`/me*`)."""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager

import pytest

from tessera_events import Actor, decode_envelope
from tessera_identity.main import build_spec
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import service_client, sessions_ended, started

ADMIN = Actor(type="user", id="integration-admin")


@pytest.fixture(scope="module")
async def served(database_url, nats_url, namespace):
    ns = f"{namespace}tn"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns,
                               endpoint="http://tessera.test", admin_endpoint="http://console.tessera.test")
    async with started(build_spec(settings, name=f"identity-{ns}")) as (app, ctx):
        yield app, ctx


def client(served, tenant: str, caller: Actor = ADMIN):
    return service_client(served[0], caller, tenant_id=tenant, base_url="http://identity")


async def test_a_provider_per_tenant(served):
    async with client(served, "default") as default, client(served, "admin") as admin:
        issuers = [(await c.get("/oidc/.well-known/openid-configuration")).json()["issuer"] for c in (default, admin)]
        assert issuers == ["http://tessera.test/oidc", "http://console.tessera.test/oidc"]
        kids = [{k["kid"] for k in (await c.get("/oidc/jwks")).json()["keys"]} for c in (default, admin)]
        assert kids[0] and kids[1] and not kids[0] & kids[1]
        rows = await served[1].pool.fetch(
            "SELECT tenant_id, type, oidc_client_metadata FROM applications WHERE id = 'admin-console'")
        assert [(r["tenant_id"], r["type"]) for r in rows] == [("admin", "SPA")]
        assert rows[0]["oidc_client_metadata"] == {"redirectUris": ["http://console.tessera.test/console/callback"],
                                                   "postLogoutRedirectUris": ["http://console.tessera.test/console"]}
        demo = await served[1].pool.fetch("SELECT tenant_id FROM applications WHERE id = 'demo-app'")
        assert [r["tenant_id"] for r in demo] == ["default"]  # the admin tenant has no demo app
        # The console's client starts a sign-in on its own tenant's provider only.
        query = {"client_id": "admin-console", "redirect_uri": "http://console.tessera.test/console/callback",
                 "response_type": "code", "scope": "openid", "code_challenge": "x" * 43,
                 "code_challenge_method": "S256"}
        assert (await admin.get("/oidc/auth", params=query)).status_code == 303
        elsewhere = await default.get("/oidc/auth", params=query)
        assert elsewhere.status_code == 400 and "invalid_client" in elsewhere.text


async def test_users_are_the_tenants_own(served):
    name = f"u{secrets.token_hex(4)}"
    async with client(served, "default") as default, client(served, "admin") as admin:
        theirs = (await admin.post("/api/users", json={"username": name})).json()
        ours = (await default.post("/api/users", json={"username": name})).json()  # same name, other tenant
        assert (await default.get(f"/api/users/{theirs['id']}")).status_code == 404
        assert (await admin.get(f"/api/users/{ours['id']}")).status_code == 404
        assert [u["id"] for u in (await admin.get("/api/users", params={"search": name})).json()] == [theirs["id"]]
    rows = await served[1].pool.fetch("SELECT envelope FROM outbox WHERE aggregate_id = ANY($1)",
                                      [theirs["id"], ours["id"]])
    tenants = {decode_envelope(r["envelope"]).tenant_id for r in rows}
    assert tenants == {"admin", "default"}


async def test_the_me_api_is_the_signed_in_users_own_in_the_admin_tenant(served):
    async with client(served, "admin") as admin:
        user = (await admin.post("/api/users", json={"username": f"me{secrets.token_hex(4)}"})).json()
        kept = await admin.patch(f"/api/users/{user['id']}/custom-data", json={"customData": {"keep": True}})
        assert kept.status_code == 200, kept.text
    me = Actor(type="user", id=user["id"])
    async with client(served, "admin", me) as console:
        assert (await console.get("/me/custom-data")).json() == {"keep": True}
        patched = await console.patch("/me/custom-data", json={"foo": "bar"})
        assert patched.status_code == 200 and patched.json() == {"keep": True, "foo": "bar"}
        assert (await console.get("/me")).json()["id"] == user["id"]
        refused = await console.patch("/me/custom-data", json=["not", "an", "object"])
        assert refused.status_code == 400
    async with client(served, "admin", Actor(type="application", id="m2m")) as machine:
        assert (await machine.get("/me/custom-data")).status_code == 403
    async with client(served, "default", me) as default:
        assert (await default.get("/me/custom-data")).status_code == 404


async def test_every_tenants_keys_are_refreshed_in_one_session_and_one_failing_stops_no_other(served):
    """The timed key round (wiring.refresh_keys): one brief session for all tenants, closed
    after; a tenant whose round fails keeps signing with its key, the next still gets its own."""
    from tessera_identity.oidc.provider import providers
    from tessera_identity.oidc.wiring import KEY_REFRESH_KEY, KEY_STATEMENT_SECONDS, refresh_keys

    ctx = served[1]
    built = providers(ctx)
    assert list(built) == ["default", "admin"]
    timed = ctx.extras[KEY_REFRESH_KEY]  # what runs it: every replica, no leader, started
    assert timed.leader is None and timed.every_seconds == 30.0 and timed._task is not None
    # ... this round, for these tenants, on sessions whose statements stop after the key limit.
    assert (timed.job.func, timed.job.args[0]) == (refresh_keys, built)
    async with timed.job.args[1]() as conn:
        assert conn._config.command_timeout == KEY_STATEMENT_SECONDS
        assert await conn.fetchval("SELECT current_setting('lock_timeout')") == "1min"
    default, admin = built["default"].keys, built["admin"].keys
    old_default = default.signing.kid
    sessions: list[int] = []

    @asynccontextmanager
    async def connect():
        async with ctx.brief_connection() as conn:
            sessions.append(await conn.fetchval("SELECT pg_backend_pid()"))
            yield conn

    async with ctx.pool.acquire() as conn:
        staged = {ring.tenant_id: await ring.stage(conn) for ring in (default, admin)}
        # Staged long enough ago to be promoted now; default's own cannot be decrypted here.
        await conn.execute("UPDATE oidc_signing_keys SET created_at = now() - make_interval(secs => $2)"
                           " WHERE kid = ANY($1)", list(staged.values()), float(default.propagation_seconds + 1))
        await conn.execute("UPDATE oidc_signing_keys SET kek_id = 'another' WHERE kid = $1", staged["default"])
    try:
        with pytest.raises(RuntimeError, match="tenants default$"):  # the round counts as failed
            await refresh_keys(built, connect)
        assert admin.signing.kid == staged["admin"] and staged["admin"] in admin.published
        assert default.signing.kid == old_default  # its reread failed: it signs with what it had
        assert len(sessions) == 1
        await sessions_ended(ctx.pool, sessions)

        @asynccontextmanager
        async def lost():  # a session gone before the round asks it anything
            async with ctx.brief_connection() as conn:
                conn.terminate()
                yield conn

        before = {tenant: provider.keys.signing.kid for tenant, provider in built.items()}
        with pytest.raises(RuntimeError, match="tenants default, admin$"):  # each failed, each tried
            await refresh_keys(built, lost)
        assert {tenant: provider.keys.signing.kid for tenant, provider in built.items()} == before
    finally:
        async with ctx.pool.acquire() as conn:
            await conn.execute("DELETE FROM oidc_signing_keys WHERE kid = $1", staged["default"])
            await conn.execute("UPDATE oidc_signing_keys SET status = 'current', retired_at = NULL, expires_at = NULL"
                               " WHERE kid = $1", old_default)
            await default.reload(conn)
