"""The SSRF guard, on (as deployed): refused at creation for forbidden literals, and at delivery
for a name that resolves to loopback. Nothing is ever sent to 169.254.169.254 or 10.0.0.1:
creation refuses them before any row exists."""

from __future__ import annotations

import ipaddress

import pytest

from tessera_events.experience import InteractionContext, InteractionSignedIn
from tessera_webhook_dispatcher.ssrf import is_forbidden

FORBIDDEN = ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://127.0.0.1:8080/",
             "https://[::1]/", "http://192.168.1.1/", "http://[::ffff:169.254.169.254]/",
             "http://100.100.100.200/", "http://metadata.google.internal/"]


@pytest.mark.parametrize("url", FORBIDDEN)
async def test_creation_refuses_forbidden_addresses(guarded, url):
    response = await guarded.client.post("/api/hooks", json={"events": ["PostSignIn"], "config": {"url": url}})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "guard.invalid_input"
    assert response.json()["data"]["issues"][0]["path"] == ["config", "url"]
    assert await guarded.ctx.pool.fetchval("SELECT count(*) FROM hooks") == 0


async def test_update_and_test_refuse_them_too(guarded):
    hook = await guarded.create_hook("https://example.com/hook")
    patched = await guarded.client.patch(f"/api/hooks/{hook['id']}", json={"config": {"url": "http://10.0.0.1/"}})
    assert patched.status_code == 400
    assert (await guarded.client.get(f"/api/hooks/{hook['id']}")).json()["config"]["url"] == "https://example.com/hook"
    tested = await guarded.client.post(f"/api/hooks/{hook['id']}/test", json={
        "events": ["PostSignIn"], "config": {"url": "http://169.254.169.254/"}})
    assert tested.status_code == 400


async def test_a_name_resolving_to_loopback_is_refused_at_delivery(guarded, receiver):
    url = receiver.url.replace("127.0.0.1", "localhost")
    hook = await guarded.create_hook(url, config={"url": url, "retries": 0})  # a name: checked when sent
    await guarded.experience.publish(InteractionSignedIn(user_id="u1", context=InteractionContext(interaction_id="i1")))
    delivery = await guarded.settled(hook["id"], 1)
    attempt = delivery["attempts"][0]
    assert attempt["result"] == "Error" and "forbidden address" in attempt["error"]
    assert receiver.requests == []
    tested = await guarded.client.post(f"/api/hooks/{hook['id']}/test", json={"events": ["PostSignIn"], "config": {"url": url}})
    assert tested.status_code == 422 and "forbidden address" in tested.json()["message"]
    assert receiver.requests == []


async def test_allowed_deployments_reach_loopback(dispatcher, receiver):
    url = receiver.url.replace("127.0.0.1", "localhost")
    hook = await dispatcher.create_hook(url)
    await dispatcher.experience.publish(InteractionSignedIn(user_id="u1", context=InteractionContext(interaction_id="i1")))
    assert (await dispatcher.settled(hook["id"], 1))["status"] == "succeeded"
    assert receiver.requests[0].headers["host"] == url.split("/")[2]


@pytest.mark.parametrize(("address", "forbidden"), [
    ("8.8.8.8", False), ("2606:4700:4700::1111", False), ("127.0.0.2", True), ("::1", True),
    ("169.254.169.254", True), ("10.0.0.1", True), ("172.16.0.1", True), ("::ffff:10.0.0.1", True),
    ("fd00:ec2::254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("fe80::1", True),
    ("2002:7f00:1::", True), ("2002:a9fe:a9fe::1", True), ("2002:808:808::1", False), ("fec0::1", True),
])
def test_is_forbidden(address, forbidden):
    assert is_forbidden(ipaddress.ip_address(address)) is forbidden


async def test_every_new_connection_resolves_and_checks_again(receiver):
    """No DNS cache between the check and a connection: a receiver that closes each
    connection makes the sender resolve (and check) the name once per request, so a name
    re-pointed at a forbidden address is refused on the next connection (DNS rebinding)."""
    from tessera_webhook_dispatcher.clock import Clock
    from tessera_webhook_dispatcher.deliveries.sender import Sender

    sender = Sender(timeout=5.0, allow_private=True, clock=Clock())
    resolved: list[str] = []
    real_resolve = sender.resolver.resolve

    async def counting(host, port=0, family=0):
        resolved.append(host)
        return await real_resolve(host, port, family)

    sender.resolver.resolve = counting  # a spy on the real resolver
    receiver.answers = [(200, {"connection": "close"}, "{}"), (200, {"connection": "close"}, "{}")]
    url = receiver.url.replace("127.0.0.1", "localhost")
    try:
        first = await sender.post(url, {"content-type": "application/json"}, b"{}")
        second = await sender.post(url, {"content-type": "application/json"}, b"{}")
        assert first.success and second.success
        assert resolved == ["localhost", "localhost"]
        # The same name, now with the guard on: refused at the connection, nothing sent.
        sender.resolver.allow_private = False
        receiver.answers = []
        refused = await sender.post(url, {"content-type": "application/json"}, b"{}")
        assert not refused.success and "forbidden address" in (refused.error or "")
        assert len(receiver.requests) == 2
    finally:
        await sender.close()


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0177.0.0.1", "127.0.0.1.", "１２７.0.0.1"])
async def test_loopback_in_unusual_notation_is_refused_at_delivery(receiver, host):
    """aiohttp takes any all-digits-and-dots host for an address and connects without asking
    the resolver (the OS then reads `2130706433` or `127.1` as 127.0.0.1), and yarl turns
    fullwidth digits into ASCII ones: such a host must not slip past the guard."""
    from tessera_webhook_dispatcher.clock import Clock
    from tessera_webhook_dispatcher.deliveries.sender import Sender

    port = receiver.url.split(":")[2].split("/")[0]
    sender = Sender(timeout=5.0, allow_private=False, clock=Clock())
    try:
        outcome = await sender.post(f"http://{host}:{port}/hook", {"content-type": "application/json"}, b"{}")
    finally:
        await sender.close()
    assert not outcome.success and outcome.status_code is None
    assert outcome.error is not None and outcome.error.startswith("RequestError: ")
    assert receiver.requests == []
