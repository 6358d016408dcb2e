"""The token endpoint's caches across two replicas of identity, with the real rbac beside them.

Each replica keeps its clients (applications) and rbac's answers per (application, resource) in
memory. What a change takes away must be gone from both replicas once its event arrives: a
scope taken from a role, a resource deleted, a secret replaced, an application deleted. The
caches' TTLs are an hour here, so only the events can have done it; how late a replica may be
when it misses an event is bounded by those TTLs (2 s and 5 s by default) and by a reconnect,
which forgets everything (the last test).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest

from tessera_events import Actor
from tessera_identity.main import build_spec
from tessera_identity.oidc import clients as clients_module
from tessera_identity.oidc.provider import Provider, provider_for
from tessera_identity.oidc.testing import environment
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import service_client, started

rbac_main = pytest.importorskip("tessera_rbac.main", reason="rbac is not installed")

_modules = itertools.count()
ADMIN = Actor(type="user", id="test-admin")
# Nothing but an event may end a cached answer within a test.
AN_HOUR = {"TESSERA_OIDC_CLIENT_CACHE_SECONDS": "3600", "TESSERA_OIDC_APPLICATION_SCOPES_CACHE_SECONDS": "3600"}


@dataclass
class Replica:
    app: object
    ctx: object

    @property
    def provider(self) -> Provider:
        return provider_for(self.ctx, self.ctx.settings.tenant_id)

    async def token(self, client_id: str, secret: str, **params: str) -> httpx.Response:
        async with service_client(self.app, base_url="http://identity") as http:
            return await http.post("/oidc/token", data={"grant_type": "client_credentials", **params},
                                   auth=(client_id, secret))


@dataclass
class Stack:
    a: Replica
    b: Replica
    identity: httpx.AsyncClient  # the Management API of replica a
    rbac: httpx.AsyncClient


@pytest.fixture(scope="module")
async def stack(database_url, nats_url, namespace):
    ns = f"{namespace}tc{next(_modules)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    rbac_spec = rbac_main.build_spec(settings)
    rbac_spec.name = f"rbac-{ns}"
    # Two replicas: the same service name, so the same schema and NATS namespace.
    with environment(AN_HOUR):
        a = started(build_spec(settings, name=f"identity-{ns}"))
        b = started(build_spec(settings, name=f"identity-{ns}"))
        (a_app, a_ctx), (b_app, b_ctx) = await a.__aenter__(), await b.__aenter__()
    try:
        async with started(rbac_spec) as (rbac_app, _), \
                service_client(a_app, ADMIN, base_url="http://identity") as identity, \
                service_client(rbac_app, ADMIN, base_url="http://rbac") as rbac:
            yield Stack(Replica(a_app, a_ctx), Replica(b_app, b_ctx), identity, rbac)
    finally:
        await b.__aexit__(None, None, None)
        await a.__aexit__(None, None, None)


async def eventually(check, *, what: str, tries: int = 400) -> None:
    """Wait (up to ~20 s) for `check()` to hold: events take a moment to be relayed."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def machine(stack: Stack, name: str) -> dict:
    created = await stack.identity.post("/api/applications", json={"name": name, "type": "MachineToMachine"})
    assert created.status_code == 200, created.text
    return created.json()


async def api_with_role(stack: Stack, indicator: str, app_id: str) -> tuple[str, dict[str, str], str]:
    """A resource with scopes read and write, and a machine role holding both, given to the app."""
    resource = await stack.rbac.post("/api/resources", json={"name": indicator, "indicator": indicator})
    assert resource.status_code == 201, resource.text
    resource_id = resource.json()["id"]
    scopes = {}
    for name in ("read", "write"):
        scope = await stack.rbac.post(f"/api/resources/{resource_id}/scopes",
                                      json={"name": name, "description": name})
        assert scope.status_code == 201, scope.text
        scopes[name] = scope.json()["id"]
    role = await stack.rbac.post("/api/roles", json={"name": f"robots of {indicator}", "description": "robots",
                                                     "type": "MachineToMachine", "scopeIds": list(scopes.values())})
    assert role.status_code == 200, role.text
    role_id = role.json()["id"]

    async def linked() -> bool:  # rbac learns of the application from identity's event
        response = await stack.rbac.post(f"/api/roles/{role_id}/applications", json={"applicationIds": [app_id]})
        return response.status_code == 201

    await eventually(linked, what="rbac knows the application")
    return resource_id, scopes, role_id


async def scope_of(replica: Replica, app: dict, indicator: str) -> str | None:
    response = await replica.token(app["id"], app["secret"], resource=indicator, scope="read write")
    return response.json().get("scope") if response.status_code == 200 else response.json()["error"]


async def test_a_scope_taken_from_the_role_and_a_deleted_resource_are_gone_from_both_replicas(stack):
    app = await machine(stack, "robot")
    indicator = f"https://orders{next(_modules)}.example"
    resource_id, scopes, role_id = await api_with_role(stack, indicator, app["id"])
    for replica in (stack.a, stack.b):
        assert await scope_of(replica, app, indicator) == "read write"  # cached, for an hour

    removed = await stack.rbac.delete(f"/api/roles/{role_id}/scopes/{scopes['write']}")
    assert removed.status_code == 204, removed.text
    for name, replica in (("a", stack.a), ("b", stack.b)):
        await eventually(lambda: _is(scope_of(replica, app, indicator), "read"),
                         what=f"replica {name} stops granting the scope taken away")

    deleted = await stack.rbac.delete(f"/api/resources/{resource_id}")
    assert deleted.status_code == 204, deleted.text
    for name, replica in (("a", stack.a), ("b", stack.b)):
        await eventually(lambda: _is(scope_of(replica, app, indicator), "invalid_target"),
                         what=f"replica {name} refuses the deleted resource")


async def test_a_replaced_secret_and_a_deleted_application_are_refused_by_both_replicas(stack):
    app = await machine(stack, "rotating robot")
    old, new = app["secret"], "a-new-secret-for-the-rotating-robot-0001"
    for replica in (stack.a, stack.b):
        assert (await replica.token(app["id"], old)).status_code == 200  # each replica caches the client

    replaced = await stack.identity.patch(f"/api/applications/{app['id']}", json={"secret": new})
    assert replaced.status_code == 200, replaced.text
    # The new secret works at once on both (a cached client that refuses it is read again) ...
    for replica in (stack.a, stack.b):
        assert (await replica.token(app["id"], new)).status_code == 200
    # ... and the old one is refused by both once the event is in.
    for name, replica in (("a", stack.a), ("b", stack.b)):
        await eventually(lambda: _is_status(replica.token(app["id"], old), 401),
                         what=f"replica {name} refuses the replaced secret")

    assert (await stack.identity.delete(f"/api/applications/{app['id']}")).status_code == 204
    for name, replica in (("a", stack.a), ("b", stack.b)):
        await eventually(lambda: _is_status(replica.token(app["id"], new), 401),
                         what=f"replica {name} refuses the deleted application")


async def test_a_secret_changed_an_instant_after_a_replica_read_the_client_is_taken_at_once(stack, monkeypatch):
    """A replica's copy of the client, read an instant before its secret changed, with no event
    telling it yet: the new secret is accepted (a copy read before the request is read again
    before a refusal, however young), and a wrong one is still refused."""
    app = await machine(stack, "quickly rotated robot")
    new = "a-secret-changed-behind-the-caches-0001"
    clients = stack.b.provider.clients

    async def cached() -> bool:  # the application's creation event, which evicts, is in
        return (await stack.b.token(app["id"], app["secret"])).status_code == 200 and app["id"] in clients._cache

    await eventually(cached, what="replica b keeps the client")
    await asyncio.sleep(0.2)  # no event of the set-up left on its way
    clients.evict(app["id"])
    assert (await stack.b.token(app["id"], app["secret"])).status_code == 200  # read just now
    # From here b's clock stands still: its copy stays as young as it can be.
    monkeypatch.setattr(clients_module, "time", SimpleNamespace(monotonic=lambda frozen=time.monotonic(): frozen))
    # Changed in the database only, so no event can have told b.
    await stack.a.ctx.pool.execute("UPDATE applications SET secret = $1 WHERE id = $2", new, app["id"])
    assert (await stack.b.token(app["id"], new)).status_code == 200
    assert (await stack.b.token(app["id"], "not-the-secret-of-this-robot")).status_code == 401


async def test_a_redirect_uri_added_an_instant_after_a_replica_read_the_client_is_taken_at_once(stack, monkeypatch):
    callback, added = "https://spa.example/callback", "https://spa.example/added"
    created = await stack.identity.post("/api/applications", json={
        "name": "spa", "type": "SPA", "oidcClientMetadata": {"redirectUris": [callback], "postLogoutRedirectUris": []}})
    assert created.status_code == 200, created.text
    client_id, clients = created.json()["id"], stack.b.provider.clients

    async def authorize(redirect_uri: str) -> int:
        async with service_client(stack.b.app, base_url="http://identity") as http:
            return (await http.get("/oidc/auth", params={
                "client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})).status_code

    async def cached() -> bool:  # the application's creation event, which evicts, is in
        return await authorize(callback) == 303 and client_id in clients._cache

    await eventually(cached, what="replica b keeps the client")
    await asyncio.sleep(0.2)  # no event of the set-up left on its way
    clients.evict(client_id)
    assert await authorize(callback) == 303  # read just now
    monkeypatch.setattr(clients_module, "time", SimpleNamespace(monotonic=lambda frozen=time.monotonic(): frozen))
    # Added in the database only, so no event can have told b.
    await stack.a.ctx.pool.execute(
        "UPDATE applications SET oidc_client_metadata = jsonb_set(oidc_client_metadata, '{redirectUris}', $1::jsonb)"
        " WHERE id = $2", [callback, added], client_id)
    assert await authorize(added) == 303
    assert await authorize("https://spa.example/never-registered") == 400


async def test_a_client_refusing_requests_is_read_again_at_most_once_per_interval(stack, monkeypatch):
    app = await machine(stack, "often refused robot")
    provider = stack.b.provider
    # A cache of its own, on b's database: no event of another test evicts from it meanwhile.
    clients = clients_module.ClientCache(provider.pool, provider.tenant_id, provider.endpoint, ttl=3600)
    client = await clients.get(app["id"])
    reads, read = [], clients_module.store.find_application

    async def counted(executor, tenant_id, client_id):
        if client_id == app["id"]:
            reads.append(client_id)
        return await read(executor, tenant_id, client_id)

    now = [1000.0]
    monkeypatch.setattr(clients_module.store, "find_application", counted)
    monkeypatch.setattr(clients_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    assert (await clients.read_again_before_refusing(client)).id == app["id"] and len(reads) == 1
    now[0] += clients_module.REREAD_SECONDS * 0.99
    again = await clients.read_again_before_refusing(client)  # the copy that read left in the cache
    assert again is clients._cache[app["id"]] and len(reads) == 1
    now[0] += clients_module.REREAD_SECONDS * 0.02
    assert (await clients.read_again_before_refusing(client)).id == app["id"] and len(reads) == 2
    # The times are kept for at most 10,000 clients, then forgotten all at once: memory stays
    # bounded whatever a flood names, and the next refusal of each client reads it again.
    clients._read_again_at.update({f"another client {n}": now[0] for n in range(10_000)})
    now[0] += clients_module.REREAD_SECONDS * 1.01
    assert (await clients.read_again_before_refusing(client)).id == app["id"] and len(reads) == 3
    assert clients._read_again_at == {app["id"]: now[0]}


async def test_after_a_reconnect_a_replica_trusts_nothing_it_cached(stack):
    """Events published while a replica's NATS connection was down never reach it: once it is
    back, every cached client and rbac answer is forgotten (not left to the TTLs)."""
    app = await machine(stack, "reconnecting robot")
    indicator = f"https://reconnect{next(_modules)}.example"
    await api_with_role(stack, indicator, app["id"])
    provider = stack.b.provider
    for _ in range(100):
        assert await scope_of(stack.b, app, indicator) == "read write"
        if provider.clients._cache and provider._application_scopes:
            break  # else an rbac event of the set-up has just emptied it: ask again
    else:
        raise AssertionError("nothing was cached")
    # What the bus calls once reconnected (synchronously: no event can come in between).
    for listener in list(stack.b.ctx.bus.reconnect_listeners):
        listener()
    assert not provider.clients._cache and not provider._application_scopes


async def _is(answer, expected) -> bool:
    return await answer == expected


async def _is_status(response, status: int) -> bool:
    return (await response).status_code == status
