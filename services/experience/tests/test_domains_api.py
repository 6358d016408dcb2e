"""`/api/domains*` on real PostgreSQL and NATS, as Logto 1.6 answers them with no DNS provider:
one domain per tenant, its CNAME record, PendingVerification, Logto's errors."""

from __future__ import annotations

import asyncio

import pytest


def error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    return response.json()


async def test_domains_lifecycle(deployment):
    client = deployment.client
    assert (await client.get("/api/domains")).json() == []
    created = await client.post("/api/domains", json={"domain": "Auth.Example.com", "ignored": True})
    assert created.status_code == 201, created.text
    body = created.json()
    assert list(body) == ["id", "domain", "status", "errorMessage", "dnsRecords"]
    assert body["domain"] == "auth.example.com" and body["status"] == "PendingVerification"
    assert body["errorMessage"] is None
    # The one record to set: a CNAME to this deployment's host (its endpoint is http://tessera.test).
    assert body["dnsRecords"] == [{"type": "CNAME", "name": "auth.example.com", "value": "tessera.test"}]
    assert (await client.get("/api/domains")).json() == [body]
    assert (await client.get(f"/api/domains/{body['id']}")).json() == body
    # Logto 1.6 allows one custom domain.
    error(await client.post("/api/domains", json={"domain": "other.example.com"}), 422, "domain.limit_to_one_domain")
    assert (await client.delete(f"/api/domains/{body['id']}")).status_code == 204
    data = error(await client.get(f"/api/domains/{body['id']}"), 404, "entity.not_exists_with_id")
    assert body["id"] in data["message"]
    error(await client.delete(f"/api/domains/{body['id']}"), 404, "entity.not_exists_with_id")
    assert (await client.post("/api/domains", json={"domain": "other.example.com"})).status_code == 201
    events = await deployment.events("experience.domain.")
    assert [(kind, data.get("domain")) for kind, data in events][:2] == [
        ("experience.domain.created", body), ("experience.domain.deleted", "auth.example.com")]


@pytest.mark.parametrize("body", [{}, {"domain": ""}, {"domain": 42}, {"domain": "a" * 257},
                                  {"domain": "not a host"}, {"domain": "-x.example.com"}, {"domain": "localhost"},
                                  {"domain": "x" * 64 + ".example.com"}])
async def test_bad_domains_are_guard_errors_and_store_nothing(deployment, body):
    error(await deployment.client.post("/api/domains", json=body), 400, "guard.invalid_input")
    assert await deployment.ctx.pool.fetchval("SELECT count(*) FROM domains") == 0


async def test_concurrent_creations_keep_one_domain(deployment):
    responses = await asyncio.gather(*[
        deployment.client.post("/api/domains", json={"domain": f"d{i}.example.com"}) for i in range(4)])
    assert sorted(r.status_code for r in responses) == [201, 422, 422, 422]
    assert await deployment.ctx.pool.fetchval("SELECT count(*) FROM domains") == 1
