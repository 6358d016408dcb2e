"""audit-log on real PostgreSQL and NATS: events in, /api/logs and dashboards out."""

import asyncio
import itertools

import pytest

from tessera_audit_log.main import spec as audit_spec
from tessera_events import STREAMS
from tessera_events.identity import TokenIssued, UserCreated, UserDeleted, UserSnapshot
from tessera_kit.config import ServiceSettings
from tessera_events.contracts.identity import USER_COUNTS, UserCounts
from tessera_kit import rpc
from tessera_kit.testing import publisher, service_client, started

_count = itertools.count()


@pytest.fixture
async def deployment(database_url, nats_url, namespace):
    """An audit-log in this loop, and a publisher (an 'identity') on its namespace."""
    ns = f"{namespace}a{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    spec = type(audit_spec)(**{**audit_spec.__dict__, "settings": settings, "name": f"audit-log-{ns}"})
    async with started(spec) as (app, ctx), publisher(
        database_url, nats_url, namespace=ns, stream=STREAMS["identity"], schema=f"pub_{ns}"
    ) as identity:
        async with service_client(app, base_url="http://audit") as client:
            client.identity_bus = identity.bus
            yield client, identity.publish, ctx


async def logs(client, **params):
    response = await client.get("/api/logs", params=params)
    assert response.status_code == 200, response.text
    return response


async def wait_for_logs(client, n, **params):
    for _ in range(500):
        response = await logs(client, **params)
        if int(response.headers["total-number"]) >= n:
            return response
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {n} logs arrived")


async def test_published_events_become_logs_newest_first(deployment):
    client, publish, _ = deployment
    await publish(UserCreated(user=UserSnapshot(id="u1", username="alice")))
    await publish(TokenIssued(grant_type="client_credentials", application_id="m2m", token_types=["AccessToken"]))
    body = (await wait_for_logs(client, 2)).json()
    assert [row["key"] for row in body] == ["ExchangeTokenBy.ClientCredentials", "identity.user.created"]
    assert set(body[0]) == {"tenantId", "id", "key", "payload", "createdAt"}
    assert body[0]["tenantId"] == "default" and len(body[0]["id"]) == 21


async def test_filters_and_pagination(deployment):
    client, publish, _ = deployment
    await publish(*[TokenIssued(grant_type="authorization_code", application_id=f"app{i % 2}",
                                user_id=f"u{i % 3}") for i in range(12)])
    await wait_for_logs(client, 12)
    by_app = await logs(client, applicationId="app1")
    assert by_app.headers["total-number"] == "6"
    by_user_and_key = await logs(client, userId="u0", logKey="ExchangeTokenBy.AuthorizationCode")
    assert by_user_and_key.headers["total-number"] == "4"
    assert all(r["payload"]["userId"] == "u0" for r in by_user_and_key.json())
    assert (await logs(client, logKey="nothing")).json() == []
    page = await logs(client, page="2", page_size="5")
    assert len(page.json()) == 5 and 'rel="prev"' in page.headers["link"]
    bad = await client.get("/api/logs", params={"page_size": "0"})
    assert bad.status_code == 400 and bad.json()["code"] == "guard.invalid_pagination"


async def test_get_log_by_id_and_missing_id(deployment):
    client, publish, _ = deployment
    await publish(UserCreated(user=UserSnapshot(id="u1")))
    (row,) = (await wait_for_logs(client, 1)).json()
    assert (await client.get(f"/api/logs/{row['id']}")).json() == row
    missing = await client.get("/api/logs/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "entity.not_exists_with_id"


async def test_dashboard_follows_user_events(deployment):
    client, publish, _ = deployment
    await publish(*[UserCreated(user=UserSnapshot(id=f"u{i}")) for i in range(3)])
    await publish(UserDeleted(user_id="u2"))
    await publish(TokenIssued(grant_type="authorization_code", application_id="a", user_id="u0"),
                  TokenIssued(grant_type="refresh_token", application_id="a", user_id="u0"),
                  TokenIssued(grant_type="client_credentials", application_id="m2m"))
    await wait_for_logs(client, 7)
    assert (await client.get("/api/dashboard/users/total")).json() == {"totalUserCount": 2}
    new = (await client.get("/api/dashboard/users/new")).json()
    assert new == {"today": {"count": 2, "delta": 2}, "last7Days": {"count": 2, "delta": 2}}
    active = (await client.get("/api/dashboard/users/active")).json()
    assert active["dau"] == {"count": 1, "delta": 1}
    assert len(active["dauCurve"]) == 14 and active["dauCurve"][-1]["count"] == 1
    assert (await client.get("/api/dashboard/users/active", params={"date": "bad"})).status_code == 400


async def test_user_counts_come_from_identity_when_it_answers(deployment):
    """The copy here follows identity's events; an admin who has just created a user (no
    event applied yet) sees it counted, as identity knows it."""
    client, publish, _ = deployment
    asked = []

    async def counts(request):
        asked.append(request)
        return UserCounts(total=41, created=[5, 3, 12, 20])

    served = await rpc.serve(client.identity_bus, rpc.RpcHandler(USER_COUNTS, counts))
    await client.identity_bus.nc.flush()
    try:
        assert (await client.get("/api/dashboard/users/total")).json() == {"totalUserCount": 41}
        new = (await client.get("/api/dashboard/users/new")).json()
        assert new == {"today": {"count": 5, "delta": 2}, "last7Days": {"count": 12, "delta": -8}}
        day, week = 86_400_000, 7 * 86_400_000
        assert asked[0].windows == []
        (today, before, last7, previous7) = asked[1].windows
        assert today[1] - today[0] == day and before == (today[0] - day, today[0])
        assert last7 == (today[1] - week, today[1]) and previous7 == (today[1] - 2 * week, today[1] - week)
    finally:
        await served.unsubscribe()
    # identity away: the copy answers (no event applied here: nobody)
    assert (await client.get("/api/dashboard/users/total")).json() == {"totalUserCount": 0}


async def test_an_event_delivered_twice_is_logged_once(deployment):
    client, publish, ctx = deployment
    await publish(UserCreated(user=UserSnapshot(id="u1")))
    (row,) = (await wait_for_logs(client, 1)).json()
    event_id = row["payload"]["eventId"]
    envelope_row = await ctx.pool.fetchrow("SELECT 1 FROM inbox WHERE event_id = $1", event_id)
    assert envelope_row is not None
    consumer = ctx.consumers[0]
    from tessera_kit.outbox import build_envelope  # a redelivery of the same envelope id
    import msgspec

    duplicate = msgspec.structs.replace(build_envelope(UserCreated(user=UserSnapshot(id="u1"))), id=event_id)
    assert await consumer.apply(duplicate) is False
    assert (await logs(client)).headers["total-number"] == "1"


async def test_a_batch_is_logged_in_one_statement_with_its_user_counts(deployment):
    """The consumer's batch path (record_many): every entry with its payload, the user counts
    of each event, an event already logged left out."""
    client, _, ctx = deployment
    from tessera_kit.outbox import build_envelope

    envelopes = [build_envelope(UserCreated(user=UserSnapshot(id=f"b{i}"))) for i in range(3)]
    envelopes.append(build_envelope(TokenIssued(grant_type="authorization_code", application_id="a",
                                                user_id="b0", scope="openid")))
    consumer = ctx.consumers[0]
    assert await consumer.apply_many(envelopes) == 4
    assert await consumer.apply_many(envelopes[:2] + [build_envelope(UserDeleted(user_id="b1"))]) == 1
    body = (await logs(client)).json()
    assert len(body) == 5
    token = next(row for row in body if row["key"] == "ExchangeTokenBy.AuthorizationCode")
    assert token["payload"]["userId"] == "b0" and token["payload"]["applicationId"] == "a"
    assert {row["payload"]["eventId"] for row in body} == {e.id for e in envelopes} | {body[0]["payload"]["eventId"]}
    assert (await client.get("/api/dashboard/users/total")).json() == {"totalUserCount": 2}
    assert (await client.get("/api/dashboard/users/active")).json()["dau"]["count"] == 1
