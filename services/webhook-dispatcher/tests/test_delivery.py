"""Deliveries: from experience's events to signed requests on a real receiver, retried on a
schedule (moved by a manual clock), recorded as attempts, logs, stats and events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import threading

import pytest
from standardwebhooks import Webhook

from tessera_events.experience import (
    InteractionApplication,
    InteractionContext,
    InteractionPasswordReset,
    InteractionRegistered,
    InteractionSignedIn,
)
from tessera_events.identity import UserSnapshot
from tessera_webhook_dispatcher.deliveries import sender as sender_module
from tessera_webhook_dispatcher.deliveries.domain import RETRY_DELAYS, JITTER
from tessera_webhook_dispatcher.deliveries.scheduler import Scheduler

USER = UserSnapshot(id="u1", username="alice", primary_email="alice@example.com", name="Alice",
                    custom_data={"plan": "pro"}, created_at=1_686_000_000_000, last_sign_in_at=1_686_000_100_000)
CONTEXT = InteractionContext(interaction_id="interaction-1", application_id="app1", ip="10.1.2.3",
                             user_agent="Mozilla/5.0 test")
APPLICATION = InteractionApplication(id="app1", type="SPA", name="My app", description=None)


def signed_in(user_id: str = "u1") -> InteractionSignedIn:
    return InteractionSignedIn(user_id=user_id, context=CONTEXT, user=USER, application=APPLICATION)


def iso_of(ms: int) -> str:
    at = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


async def test_post_sign_in_is_delivered_with_logtos_payload_and_both_signatures(dispatcher, receiver):
    hook = await dispatcher.create_hook(receiver.url, config={"url": receiver.url, "headers": {"x-custom": "yes"}})
    await dispatcher.experience.publish(signed_in())
    (request,) = await receiver.wait_for(1)
    body = json.loads(request.body)
    (envelope_row,) = await dispatcher.experience.pool.fetch("SELECT envelope FROM outbox")
    occurred_at = json.loads(envelope_row["envelope"])["occurred_at"]
    expected = {
        "hookId": hook["id"], "event": "PostSignIn", "interactionEvent": "SignIn", "createdAt": iso_of(occurred_at),
        "sessionId": "interaction-1", "userAgent": "Mozilla/5.0 test", "userId": "u1",
        "user": {"id": "u1", "username": "alice", "primaryEmail": "alice@example.com", "primaryPhone": None,
                 "name": "Alice", "avatar": None, "customData": {"plan": "pro"}, "identities": {},
                 "lastSignInAt": 1_686_000_100_000, "createdAt": 1_686_000_000_000, "applicationId": None,
                 "isSuspended": False},
        "application": {"id": "app1", "type": "SPA", "name": "My app", "description": None},
    }
    assert body == expected
    assert list(body) == list(expected)  # Logto's key order
    assert request.body == json.dumps(expected, separators=(",", ":")).encode()
    headers = request.headers
    assert headers["user-agent"] == "Logto (https://logto.io/)"
    assert headers["content-type"] == "application/json"
    assert headers["x-custom"] == "yes"
    key = hook["signingKey"].encode()
    assert headers["logto-signature-sha-256"] == hmac.new(key, request.body, hashlib.sha256).hexdigest()
    # Standard Webhooks, verified by its reference package; the secret is whsec_ + base64(key).
    secret = "whsec_" + base64.b64encode(key).decode()
    assert Webhook(secret).verify(request.body, headers) == expected
    with pytest.raises(Exception):
        Webhook(secret).verify(request.body + b" ", headers)
    delivery = await dispatcher.settled(hook["id"], 1)
    assert headers["webhook-id"] == delivery["id"]
    assert delivery["status"] == "succeeded" and delivery["attempts"][0]["result"] == "Success"
    (_, succeeded), = await dispatcher.events("webhooks.delivery.succeeded")
    assert succeeded["attempt"]["request_body"] == expected
    assert succeeded["attempt"]["response"] == {"statusCode": 200, "body": {"ok": True}}
    assert hook["signingKey"] not in json.dumps(succeeded)


@pytest.mark.parametrize(("event", "hook_event", "interaction_event"), [
    (InteractionRegistered(user_id="u1", context=CONTEXT, user=USER), "PostRegister", "Register"),
    (InteractionPasswordReset(user_id="u1", context=CONTEXT), "PostResetPassword", "ForgotPassword"),
])
async def test_register_and_reset_password_fire_their_hooks(dispatcher, receiver, event, hook_event, interaction_event):
    await dispatcher.create_hook(receiver.url, events=[hook_event])
    other = await dispatcher.create_hook(receiver.url, events=["PostSignIn"])
    await dispatcher.experience.publish(signed_in(), event)
    await receiver.wait_for(2)
    bodies = sorted((json.loads(r.body) for r in receiver.requests), key=lambda b: b["event"])
    assert {b["event"] for b in bodies} == {hook_event, "PostSignIn"}
    mine = next(b for b in bodies if b["event"] == hook_event)
    assert mine["interactionEvent"] == interaction_event and "application" not in mine
    assert ("user" in mine) == (hook_event == "PostRegister")
    assert (await dispatcher.deliveries(other["id"]))[0]["event"] == "PostSignIn"


async def test_selection_follows_logto(dispatcher, receiver):
    """Legacy `event` counts only when `events` is empty; disabled hooks never fire. (With no
    other hook selecting the event, the legacy one alone keeps it off the no-hook path.)"""
    created = await dispatcher.client.post("/api/hooks", json={  # no `events` at all
        "name": "legacy", "event": "PostSignIn", "config": {"url": receiver.url}})
    assert created.status_code == 201, created.text
    legacy = created.json()
    assert legacy["events"] == []
    overridden = await dispatcher.create_hook(receiver.url, events=["PostRegister"], event="PostSignIn")
    disabled = await dispatcher.create_hook(receiver.url, enabled=False)
    await dispatcher.experience.publish(signed_in())
    await dispatcher.settled(legacy["id"], 1)
    assert await dispatcher.deliveries(overridden["id"]) == []
    assert await dispatcher.deliveries(disabled["id"]) == []
    assert len(receiver.requests) == 1


async def test_a_receiver_failing_then_succeeding_gets_it_on_the_schedule(dispatcher, receiver):
    receiver.answers = [(500, {}, "boom"), (503, {"Retry-After": "120"}, '{"busy":true}'), (429, {}, "")]
    hook = await dispatcher.create_hook(receiver.url)
    await dispatcher.experience.publish(signed_in())
    delivery = await dispatcher.settled(hook["id"], 1)
    first = delivery["attempts"][0]
    assert first["result"] == "Error" and first["statusCode"] == 500
    assert first["error"] == "HTTPError: Response code 500 (Internal Server Error)"
    assert delivery["status"] == "pending"
    created = delivery["createdAt"]
    # ~5 s later (with jitter), not before.
    assert created + RETRY_DELAYS[0] * 1000 * (1 - JITTER) - 1 <= delivery["nextAttemptAt"]
    assert delivery["nextAttemptAt"] <= created + RETRY_DELAYS[0] * 1000 * (1 + JITTER) + 1
    await dispatcher.advance(RETRY_DELAYS[0] * (1 + JITTER) + 1)
    delivery = await dispatcher.settled(hook["id"], 2)
    second = delivery["attempts"][1]
    assert second["statusCode"] == 503 and second["response"] == {"statusCode": 503, "body": {"busy": True}}
    # Retry-After: 120 s is below the 5 min step; the schedule wins, never earlier than asked.
    now_ms = int(dispatcher.clock.now().timestamp() * 1000)
    assert delivery["nextAttemptAt"] >= now_ms + 120_000
    await dispatcher.advance(RETRY_DELAYS[1] * (1 + JITTER) + 1)
    await dispatcher.settled(hook["id"], 3)
    await dispatcher.advance(RETRY_DELAYS[2] * (1 + JITTER) + 1)
    delivery = await dispatcher.settled(hook["id"], 4)
    assert delivery["status"] == "succeeded"
    assert [a["number"] for a in delivery["attempts"]] == [1, 2, 3, 4]
    assert [a["result"] for a in delivery["attempts"]] == ["Error", "Error", "Error", "Success"]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one stable id
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes each time
    assert len(await dispatcher.events("webhooks.delivery.failed")) == 3
    assert len(await dispatcher.events("webhooks.delivery.succeeded")) == 1
    # Logto's view: executionStats and recent-logs over the last 24 hours.
    got = await dispatcher.client.get(f"/api/hooks/{hook['id']}", params={"includeExecutionStats": "1"})
    assert got.json()["executionStats"] == {"requestCount": 4, "successCount": 1}
    logs = await dispatcher.client.get(f"/api/hooks/{hook['id']}/recent-logs", params={"page_size": 2})
    assert logs.headers["total-number"] == "4" and len(logs.json()) == 2
    newest = logs.json()[0]
    assert newest["key"] == "TriggerHook.PostSignIn"
    assert newest["payload"]["result"] == "Success" and newest["payload"]["hookId"] == hook["id"]
    assert newest["payload"]["hookRequest"]["body"]["userId"] == "u1"
    assert newest["payload"]["response"] == {"statusCode": 200, "body": {"ok": True}}
    errors = await dispatcher.client.get(f"/api/hooks/{hook['id']}/recent-logs",
                                         params={"logKey": "TriggerHook.PostRegister"})
    assert errors.json() == []
    # A day later they are out of the window.
    dispatcher.clock.advance(86400)
    later = await dispatcher.client.get(f"/api/hooks/{hook['id']}/recent-logs")
    assert later.json() == [] and later.headers["total-number"] == "0"


async def test_retries_cap_the_attempts_then_exhausted(dispatcher, receiver):
    receiver.answers = [(500, {}, "")] * 10
    hook = await dispatcher.create_hook(receiver.url, config={"url": receiver.url, "retries": 1})
    await dispatcher.experience.publish(signed_in())
    await dispatcher.settled(hook["id"], 1)
    await dispatcher.advance(60)
    delivery = await dispatcher.settled(hook["id"], 2)
    assert delivery["status"] == "exhausted" and delivery["nextAttemptAt"] is None
    (_, exhausted), = await dispatcher.events("webhooks.delivery.exhausted")
    assert exhausted == {"delivery_id": delivery["id"], "hook_id": hook["id"], "event": "PostSignIn", "attempts": 2}
    await dispatcher.advance(86400)
    assert len(receiver.requests) == 2
    # Replay: one more attempt now, same id and body.
    receiver.answers = []
    retried = await dispatcher.client.post(f"/api/hooks/{hook['id']}/deliveries/{delivery['id']}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "pending"
    delivery = await dispatcher.settled(hook["id"], 3)
    assert delivery["status"] == "succeeded"
    assert receiver.requests[2].headers["webhook-id"] == delivery["id"]
    missing = await dispatcher.client.post(f"/api/hooks/{hook['id']}/deliveries/nope/retry")
    assert missing.status_code == 404 and missing.json()["code"] == "entity.not_exists_with_id"


async def test_connection_refused_is_an_error_attempt(dispatcher):
    hook = await dispatcher.create_hook("http://127.0.0.1:1/", config={"url": "http://127.0.0.1:1/", "retries": 0})
    await dispatcher.experience.publish(signed_in())
    delivery = await dispatcher.settled(hook["id"], 1)
    attempt = delivery["attempts"][0]
    assert attempt["result"] == "Error" and attempt["statusCode"] is None
    assert attempt["error"].startswith("RequestError: ")
    assert delivery["status"] == "exhausted"


async def test_a_hook_failing_for_days_is_disabled(dispatcher, receiver):
    receiver.answers = [(500, {}, "")] * 20
    hook = await dispatcher.create_hook(receiver.url, config={"url": receiver.url, "retries": 0})
    await dispatcher.experience.publish(signed_in())
    await dispatcher.settled(hook["id"], 1)
    await dispatcher.advance(dispatcher.settings.webhooks_disable_after_seconds + 1)
    await dispatcher.experience.publish(signed_in("u2"))
    await dispatcher.until(lambda: _disabled(dispatcher, hook["id"]))
    (_, disabled), = await dispatcher.events("webhooks.hook.disabled")
    assert disabled["hook_id"] == hook["id"]
    await dispatcher.experience.publish(signed_in("u3"))
    # Re-enabling starts its failures over.
    response = await dispatcher.client.patch(f"/api/hooks/{hook['id']}", json={"enabled": True})
    assert response.json()["enabled"] is True


async def _disabled(dispatcher, hook_id):
    return (await dispatcher.client.get(f"/api/hooks/{hook_id}")).json()["enabled"] is False


async def test_test_route_sends_a_signed_test_payload(dispatcher, receiver):
    hook = await dispatcher.create_hook("https://example.com/unused")
    receiver.answers = [(500, {}, "no")]
    response = await dispatcher.client.post(f"/api/hooks/{hook['id']}/test", json={
        "events": ["PostRegister", "PostSignIn"], "config": {"url": receiver.url, "headers": {"x-t": "1"}}})
    assert response.status_code == 204  # a non-2xx answer is still 204
    assert len(receiver.requests) == 2
    first = receiver.requests[0]
    body = json.loads(first.body)
    assert body["hookId"] == hook["id"] and body["event"] == "PostRegister"
    assert body["sessionId"] == "fake-session-id" and body["user"]["username"] == "fake-user"
    assert body["application"]["id"] == "fake-spa-application-id" and "interactionEvent" not in body
    assert first.headers["x-t"] == "1"
    expected = hmac.new(hook["signingKey"].encode(), first.body, hashlib.sha256).hexdigest()
    assert first.headers["logto-signature-sha-256"] == expected
    # Nothing is logged for a test.
    got = await dispatcher.client.get(f"/api/hooks/{hook['id']}", params={"includeExecutionStats": "1"})
    assert got.json()["executionStats"] == {"requestCount": 0, "successCount": 0}


async def test_test_route_errors(dispatcher):
    hook = await dispatcher.create_hook("https://example.com/unused")
    refused = await dispatcher.client.post(f"/api/hooks/{hook['id']}/test", json={
        "events": ["PostSignIn"], "config": {"url": "http://127.0.0.1:1/"}})
    assert refused.status_code == 422
    assert refused.json()["code"] == "hook.send_test_payload_failed"
    assert refused.json()["message"].startswith("Failed to send test payload: RequestError")
    invalid = await dispatcher.client.post(f"/api/hooks/{hook['id']}/test", json={
        "events": ["PostSignIn"], "config": {"url": "not_work_url"}})
    assert invalid.status_code == 422
    assert invalid.json()["message"] == "Failed to send test payload: RequestError: Invalid URL"
    missing = await dispatcher.client.post("/api/hooks/nope/test", json={
        "events": ["PostSignIn"], "config": {"url": "http://127.0.0.1:1/"}})
    assert missing.status_code == 404 and missing.json()["code"] == "entity.not_exists_with_id"
    bad = await dispatcher.client.post(f"/api/hooks/{hook['id']}/test", json={"events": [], "config": {"url": "x"}})
    assert bad.status_code == 400 and bad.json()["code"] == "guard.invalid_input"


async def test_deliveries_route(dispatcher, receiver):
    hook = await dispatcher.create_hook(receiver.url)
    await dispatcher.experience.publish(signed_in(), signed_in("u2"))
    await dispatcher.until(lambda: _all_succeeded(dispatcher, hook["id"], 2))
    listed = await dispatcher.client.get(f"/api/hooks/{hook['id']}/deliveries", params={"page_size": 1})
    assert listed.status_code == 200 and listed.headers["total-number"] == "2" and len(listed.json()) == 1
    delivery = listed.json()[0]
    assert set(delivery) >= {"id", "hookId", "event", "status", "attempts", "maxAttempts", "createdAt", "body"}
    one = await dispatcher.client.get(f"/api/hooks/{hook['id']}/deliveries/{delivery['id']}")
    assert one.status_code == 200 and one.json()["id"] == delivery["id"]
    assert (await dispatcher.client.get(f"/api/hooks/{hook['id']}/deliveries/nope")).status_code == 404
    assert (await dispatcher.client.get("/api/hooks/nope/deliveries")).status_code == 404
    pending = await dispatcher.client.get(f"/api/hooks/{hook['id']}/deliveries", params={"status": "pending"})
    assert pending.json() == []


async def _all_succeeded(dispatcher, hook_id, count):
    found = await dispatcher.deliveries(hook_id)
    return len(found) == count and all(d["status"] == "succeeded" for d in found)


async def test_a_redelivered_event_makes_no_second_delivery(dispatcher, receiver):
    hook = await dispatcher.create_hook(receiver.url)
    await dispatcher.experience.publish(signed_in())
    await dispatcher.settled(hook["id"], 1)
    consumer = next(c for c in dispatcher.ctx.consumers if c.subscription.name.endswith("interactions"))
    row = await dispatcher.experience.pool.fetchrow("SELECT envelope FROM outbox")
    from tessera_events import decode_envelope
    assert await consumer.apply(decode_envelope(row["envelope"])) is False
    assert len(await dispatcher.deliveries(hook["id"])) == 1


async def test_a_header_that_cannot_be_sent_is_an_error_attempt_not_a_stuck_delivery(dispatcher, receiver):
    """Logto stores any string as a header value; one that cannot go on the wire (not ASCII)
    fails the attempt, which is recorded, rather than leaving the delivery leased forever."""
    config = {"url": receiver.url, "headers": {"x-name": "Zoë"}, "retries": 0}
    hook = await dispatcher.create_hook(receiver.url, config=config)
    await dispatcher.experience.publish(signed_in())
    delivery = await dispatcher.settled(hook["id"], 1)
    attempt = delivery["attempts"][0]
    assert attempt["result"] == "Error" and attempt["statusCode"] is None
    assert attempt["error"].startswith("RequestError: ")
    assert delivery["status"] == "exhausted" and receiver.requests == []
    tested = await dispatcher.client.post(f"/api/hooks/{hook['id']}/test", json={
        "events": ["PostSignIn"], "config": config})
    assert tested.status_code == 422 and tested.json()["code"] == "hook.send_test_payload_failed"


async def test_custom_headers_cannot_change_how_the_body_is_framed(dispatcher, receiver):
    """Framing and connection headers are the HTTP client's: a hook's own `content-length`,
    `transfer-encoding`, `host` or `connection` is not sent, and the body arrives whole."""
    framing = {"content-length": "1", "transfer-encoding": "chunked", "host": "elsewhere.test",
               "connection": "close", "x-kept": "yes"}
    hook = await dispatcher.create_hook(receiver.url, config={"url": receiver.url, "headers": framing})
    await dispatcher.experience.publish(signed_in())
    (request,) = await receiver.wait_for(1)
    assert request.headers["content-length"] == str(len(request.body))
    assert "transfer-encoding" not in request.headers
    assert request.headers["host"] == receiver.url.split("/")[2]
    assert request.headers["x-kept"] == "yes"
    assert json.loads(request.body)["hookId"] == hook["id"]
    assert (await dispatcher.settled(hook["id"], 1))["status"] == "succeeded"


@pytest.mark.parametrize("name", ["transfer-encoding ", "content-length\t", "x: y", "a b", "", "x(y)"])
async def test_a_custom_header_name_that_is_not_a_token_is_not_sent(receiver, name):
    """aiohttp writes any name it is given: `transfer-encoding : chunked` beside its own
    Content-Length is a smuggling shape for a lenient receiver. Such a hook fails, nothing is sent."""
    from tessera_webhook_dispatcher.clock import Clock
    from tessera_webhook_dispatcher.deliveries.domain import request_headers
    from tessera_webhook_dispatcher.deliveries.sender import Sender

    headers = request_headers(signing_key="key", custom={name: "chunked"}, body=b"{}", message_id="m1",
                              now=dt.datetime.now(dt.timezone.utc))
    sender = Sender(timeout=5.0, allow_private=True, clock=Clock())
    try:
        outcome = await sender.post(receiver.url, headers, b"{}")
    finally:
        await sender.close()
    assert not outcome.success and outcome.status_code is None
    assert outcome.error == "RequestError: Header name must be a valid HTTP token"
    assert receiver.requests == []


async def test_events_no_hook_selects_cost_one_statement_and_make_no_delivery(dispatcher, receiver):
    """No enabled hook selects the event: only its inbox row is written, in one statement
    (webhook_dispatcher.events.no_hook_statement); once a hook selects it, the handlers make
    the delivery, and an event already applied is never delivered later."""
    from tessera_kit.outbox import build_envelope
    from tessera_webhook_dispatcher.events import no_hook_statement

    pool = dispatcher.ctx.pool
    consumer = next(c for c in dispatcher.ctx.consumers if c.subscription.name.endswith("interactions"))
    await dispatcher.create_hook(receiver.url, enabled=False)
    await dispatcher.create_hook(receiver.url, events=["PostRegister"])
    quiet = [build_envelope(signed_in("q1")), build_envelope(signed_in("q2"))]
    ctes, args, condition = no_hook_statement(quiet, 1)  # its parameters from $1, to ask it alone
    assert ctes == [] and args == [["default", "default"], ["PostSignIn", "PostSignIn"]]
    assert await pool.fetchval(f"SELECT {condition}", *args) is True
    assert await consumer.apply_many(quiet) == 2
    assert await consumer.apply_many(quiet) == 0
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])",
                               [e.id for e in quiet]) == 2
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
    hook = await dispatcher.create_hook(receiver.url, events=["PostSignIn"])
    assert await pool.fetchval(f"SELECT {condition}", *args) is False
    loud = build_envelope(signed_in("l1"))
    assert await consumer.apply_many([quiet[0], loud]) == 1  # the handlers' path, for the new one only
    assert await pool.fetchval("SELECT array_agg(source_event_id) FROM deliveries WHERE hook_id = $1",
                               hook["id"]) == [loud.id]


async def test_a_batch_of_events_reads_the_hooks_once_and_each_event_gets_its_own_tenants_hooks(dispatcher, receiver):
    """A consumer's batch (here 20 sign-ins of two tenants, and a registration no hook selects)
    becomes its deliveries in two statements, whatever its size: each event of a steady stream
    cost two statements of its own. Each event gets only the hooks of its own tenant, and the
    deliveries keep the stream's order."""
    from tessera_kit.outbox import build_envelope
    from tessera_webhook_dispatcher.hooks import store as hooks_store

    pool = dispatcher.ctx.pool
    consumer = next(c for c in dispatcher.ctx.consumers if c.subscription.name.endswith("interactions"))
    first = await dispatcher.create_hook(receiver.url)
    second = await dispatcher.create_hook(receiver.url)
    await pool.execute(  # another tenant's hook, on the same events
        "INSERT INTO hooks (tenant_id, id, name, event, events, config, signing_key, enabled, created_at)"
        " SELECT 'other', 'other-hook', name, event, events, config, signing_key, enabled, created_at"
        " FROM hooks WHERE id = $1", first["id"])
    batch = [build_envelope(signed_in(f"u{i}"), tenant_id="default" if i % 2 else "other") for i in range(20)]
    registered = InteractionRegistered(user_id="u1", context=CONTEXT, user=USER, application=APPLICATION)
    batch.append(build_envelope(registered))  # no hook selects PostRegister
    statements: list[str] = []

    def note(logged) -> None:
        statements.append(logged.query)

    async with pool.acquire() as conn, conn.transaction():
        conn.add_query_logger(note)
        try:
            await consumer.subscription.batch_handler(conn, batch)
        finally:
            conn.remove_query_logger(note)
    assert len(statements) == 2, statements  # the hooks, the deliveries; 41 when each event asked on its own
    made = await pool.fetch("SELECT tenant_id, hook_id, source_event_id, event, body FROM deliveries"
                            " ORDER BY created_at, id")  # as the deliveries route lists them
    expected = {(e.tenant_id, hook_id, e.id) for e in batch[:20]
                for hook_id in ([first["id"], second["id"]] if e.tenant_id == "default" else ["other-hook"])}
    assert {(d["tenant_id"], d["hook_id"], d["source_event_id"]) for d in made} == expected
    assert len(made) == 30
    for delivery in made:
        body = json.loads(delivery["body"])
        assert (delivery["event"], body["hookId"], body["event"]) == ("PostSignIn", delivery["hook_id"], "PostSignIn")
    # Listed in stream order, as when each event was applied alone (though the clock stands still).
    assert [d["source_event_id"] for d in made if d["hook_id"] == first["id"]] == \
        [e.id for e in batch[:20] if e.tenant_id == "default"]
    async with pool.acquire() as conn:  # a pair asked for twice: each hook once
        selected = await hooks_store.hooks_selecting(conn, [("default", "PostSignIn")] * 3)
    assert sorted(h["id"] for h in selected[("default", "PostSignIn")]) == sorted([first["id"], second["id"]])


@pytest.fixture
def import_threads(monkeypatch) -> list[int]:
    """The thread of each import of the webhook client (aiohttp)."""
    threads: list[int] = []
    real = sender_module.import_declared

    def recording(name: str):
        threads.append(threading.get_ident())
        return real(name)

    monkeypatch.setattr(sender_module, "import_declared", recording)
    return threads


async def test_the_http_client_is_imported_off_the_event_loop_once_there_is_a_hook(dispatcher, receiver,
                                                                                    import_threads):
    """aiohttp is imported in a thread: imported by the first delivery on the event loop, it held
    the service's events and answers for ~0.2 s (the bench's webhook p99 went from ~20 to ~200
    ms). Once there is a hook, and before it is needed: the request creating the first one
    answers once it is loaded (Logto's suite reads hook.stats right after the sign-in that
    follows), and a scheduler starting where a hook exists loads it at once."""
    await dispatcher.create_hook(receiver.url)
    assert dispatcher.scheduler.sender._imported.done()
    scheduler = Scheduler(dispatcher.ctx.pool, dispatcher.ctx.outbox, dispatcher.ctx.relay, dispatcher.settings,
                          dispatcher.clock, "deliveries_started")
    await scheduler.start()
    try:
        assert scheduler.sender._imported is not None  # started where a hook exists: loading
        await scheduler.sender._imported
    finally:
        await scheduler.stop()
    # aiohttp and yarl, by the creating request and by the second scheduler, none on the loop.
    assert len(import_threads) == 4 and threading.get_ident() not in import_threads
    await dispatcher.experience.publish(signed_in())
    assert len(await receiver.wait_for(1)) == 1


async def test_a_scheduler_that_cannot_look_for_hooks_still_starts(dispatcher, receiver, monkeypatch):
    """The database refusing the start's look for hooks: the scheduler starts claiming anyway
    (its first delivery loads the HTTP client, as `Sender._aiohttp` does for any)."""
    from tessera_webhook_dispatcher.deliveries import scheduler as scheduler_module

    async def refused(conn) -> bool:
        raise ConnectionError("database away")

    await dispatcher.create_hook(receiver.url)
    monkeypatch.setattr(scheduler_module.hook_store, "any_hook", refused)
    scheduler = Scheduler(dispatcher.ctx.pool, dispatcher.ctx.outbox, dispatcher.ctx.relay, dispatcher.settings,
                          dispatcher.clock, "deliveries_refused")
    await scheduler.start()
    try:
        assert scheduler.sender._imported is None  # not loaded at start this time
        assert scheduler._loop_task is not None and not scheduler._loop_task.done()
    finally:
        await scheduler.stop()


async def test_at_rest_the_scheduler_lets_the_pools_connection_go_and_a_new_delivery_still_wakes_it(resting,
                                                                                                    receiver):
    """With nothing pending, the scheduler looks again only after webhooks_idle_poll_seconds (not
    every webhooks_poll_seconds): the pool lets its idle connection go, only the relay's stays
    (as in every service at rest), and a delivery made meanwhile is sent at once, its NOTIFY
    waking the scheduler."""
    hook = await resting.create_hook(receiver.url)
    await resting.experience.publish(signed_in())
    await receiver.wait_for(1)
    await resting.settled(hook["id"], 1)
    pool = resting.ctx.pool
    await resting.until(lambda: _true(pool.get_size() == 1))  # polled every 0.05 s, it never was
    await resting.experience.publish(signed_in("u2"))
    assert len(await receiver.wait_for(2)) == 2


async def test_the_scheduler_outlives_a_failure_of_its_own_and_goes_on_delivering(resting, receiver):
    """Nothing restarts the scheduler's task: a failure outside the claim (here its wait, as a
    clock answering a naive time would make it) is logged and the loop goes on; the next
    delivery is still sent."""
    await resting.create_hook(receiver.url)
    scheduler = resting.scheduler
    sleep, failed = scheduler._sleep, asyncio.Event()

    async def failing_once(due):
        if not failed.is_set():
            failed.set()
            raise TypeError("can't compare offset-naive and offset-aware datetimes")
        await sleep(due)

    scheduler._sleep = failing_once
    scheduler.wake()
    await asyncio.wait_for(failed.wait(), 10)
    await resting.experience.publish(signed_in())
    assert len(await receiver.wait_for(1)) == 1


async def test_a_retry_not_yet_due_costs_no_look_until_it_is_and_a_disabled_hooks_waits_for_it(resting, receiver):
    """A pending delivery of an enabled hook whose retry is not yet due: the scheduler does not
    look (no claim every webhooks_poll_seconds, so the pool lets its connection go) until the
    retry is due by its clock, and then takes it, nothing waking it. One of a disabled hook
    waits until the hook is enabled again, which wakes every replica."""
    receiver.answers = [(500, {}, "boom"), (500, {}, "boom")]
    hook = await resting.create_hook(receiver.url)
    await resting.experience.publish(signed_in())
    await resting.settled(hook["id"], 1)
    pool = resting.ctx.pool
    await resting.until(lambda: _true(pool.get_size() == 1))  # no look until the retry is due
    resting.clock.advance(RETRY_DELAYS[0] * (1 + JITTER) + 1)  # due now; the scheduler is not told
    await resting.settled(hook["id"], 2)
    # The next retry, due, of a disabled hook: no look for it (it could not be claimed), so at
    # rest only the relay's connection stays.
    patched = await resting.client.patch(f"/api/hooks/{hook['id']}", json={"enabled": False})
    assert patched.status_code == 200
    resting.clock.advance(RETRY_DELAYS[1] * (1 + JITTER) + 1)
    await resting.until(lambda: _true(pool.get_size() == 1))
    assert (await resting.client.patch(f"/api/hooks/{hook['id']}", json={"enabled": True})).status_code == 200
    delivery = await resting.settled(hook["id"], 3)
    assert delivery["status"] == "succeeded"


async def test_idle_the_scheduler_looks_again_soon_while_the_relays_connection_does_not_answer(resting):
    """The NOTIFYs that wake an idle scheduler arrive on the relay's connection: while that one
    does not answer (here: a relay that never connected), the idle wait is webhooks_poll_seconds,
    not webhooks_idle_poll_seconds."""
    from tessera_kit.outbox import OutboxRelay

    ctx = resting.ctx
    silent = OutboxRelay(ctx.pool, ctx.bus, ctx.outbox)  # not started: it has never answered
    scheduler = Scheduler(ctx.pool, ctx.outbox, silent, resting.settings, resting.clock, "deliveries_silent")
    answering = Scheduler(ctx.pool, ctx.outbox, ctx.relay, resting.settings, resting.clock, "deliveries_answering")
    try:
        await asyncio.wait_for(scheduler._sleep(None), 10)  # 600 s if it trusted the relay
        await resting.until(lambda: _true(ctx.relay.answered_lately()))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(answering._sleep(None), 1.0)
    finally:
        await scheduler.sender.close()
        await answering.sender.close()


async def _true(value: bool) -> bool:
    return value
