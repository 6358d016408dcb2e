"""`/api/hooks*` routes: Logto's shapes, statuses and codes (§3.11)."""

from __future__ import annotations

import pytest

from tessera_events.webhooks import HookCreated  # noqa: F401  (catalogue import)


async def test_create_hook_answers_201_with_the_row(dispatcher):
    response = await dispatcher.client.post("/api/hooks", json={
        "name": "my hook", "events": ["PostSignIn", "PostRegister", "PostSignIn"],
        "config": {"url": "https://example.com/hook", "headers": {"x-secret": "s"}, "retries": 2},
    })
    assert response.status_code == 201
    hook = response.json()
    assert set(hook) == {"tenantId", "id", "name", "event", "events", "config", "signingKey", "enabled", "createdAt"}
    assert hook["tenantId"] == "default"
    assert len(hook["id"]) == 21 and len(hook["signingKey"]) == 21
    assert hook["name"] == "my hook"
    assert hook["event"] is None
    assert hook["events"] == ["PostSignIn", "PostRegister"]  # deduplicated
    assert hook["config"] == {"url": "https://example.com/hook", "headers": {"x-secret": "s"}, "retries": 2}
    assert hook["enabled"] is True
    assert isinstance(hook["createdAt"], int)
    events = await dispatcher.events("webhooks.hook.created")
    assert len(events) == 1
    assert events[0][1]["hook"]["id"] == hook["id"]
    assert "signing_key" not in events[0][1]["hook"] and hook["signingKey"] not in str(events[0][1])
    assert "x-secret" not in str(events[0][1])


async def test_legacy_event_field_and_defaults(dispatcher):
    response = await dispatcher.client.post("/api/hooks", json={
        "event": "PostRegister", "config": {"url": "https://example.com/"}})
    assert response.status_code == 201
    hook = response.json()
    assert hook["event"] == "PostRegister" and hook["events"] == [] and hook["name"] == ""


@pytest.mark.parametrize("body", [
    {"config": {"url": "https://example.com/"}},
    {"event": None, "config": {"url": "https://example.com/"}},
])
async def test_create_without_events_is_missing_events(dispatcher, body):
    response = await dispatcher.client.post("/api/hooks", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "hook.missing_events"
    assert response.json()["message"] == "You need to provide at least one event."


@pytest.mark.parametrize("body", [
    {"name": "", "events": ["PostSignIn"], "config": {"url": "https://example.com/"}},
    {"events": [], "config": {"url": "https://example.com/"}},
    {"events": ["Nope"], "config": {"url": "https://example.com/"}},
    {"events": ["PostSignIn"]},
    {"events": ["PostSignIn"], "config": {"url": "https://example.com/", "retries": 4}},
    {"events": ["PostSignIn"], "config": {}},
    # past what a datetime holds: was a 500 (found by the schema fuzzer)
    {"events": ["PostSignIn"], "config": {"url": "https://example.com/"}, "createdAt": 1e20},
])
async def test_create_with_bad_input_is_guard_invalid_input(dispatcher, body):
    response = await dispatcher.client.post("/api/hooks", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "guard.invalid_input"
    assert await dispatcher.ctx.pool.fetchval("SELECT count(*) FROM hooks") == 0


async def test_non_url_is_stored_as_logto_does(dispatcher):
    response = await dispatcher.client.post("/api/hooks", json={"events": ["PostSignIn"], "config": {"url": "not_work_url"}})
    assert response.status_code == 201


async def test_list_get_and_execution_stats(dispatcher):
    first = await dispatcher.create_hook("https://example.com/1", createdAt=1_000)
    second = await dispatcher.create_hook("https://example.com/2")
    listed = await dispatcher.client.get("/api/hooks")
    assert listed.status_code == 200
    assert [h["id"] for h in listed.json()] == [second["id"], first["id"]]  # newest first
    assert "total-number" not in listed.headers  # optional pagination
    assert "executionStats" not in listed.json()[0]
    paged = await dispatcher.client.get("/api/hooks", params={"page": 1, "page_size": 1})
    assert paged.headers["total-number"] == "2" and len(paged.json()) == 1
    with_stats = await dispatcher.client.get("/api/hooks", params={"includeExecutionStats": "true"})
    assert all(h["executionStats"] == {"requestCount": 0, "successCount": 0} for h in with_stats.json())
    no_stats = await dispatcher.client.get("/api/hooks", params={"includeExecutionStats": "false"})
    assert "executionStats" not in no_stats.json()[0]
    got = await dispatcher.client.get(f"/api/hooks/{first['id']}")
    assert got.status_code == 200 and got.json() == first
    # GET by id: any non-empty value includes the stats (Logto's quirk 6).
    got = await dispatcher.client.get(f"/api/hooks/{first['id']}", params={"includeExecutionStats": "false"})
    assert got.json()["executionStats"] == {"requestCount": 0, "successCount": 0}


async def test_bad_pagination(dispatcher):
    response = await dispatcher.client.get("/api/hooks", params={"page_size": 101})
    assert response.status_code == 400 and response.json()["code"] == "guard.invalid_pagination"


async def test_get_missing_hook(dispatcher):
    response = await dispatcher.client.get("/api/hooks/nope")
    assert response.status_code == 404
    assert response.json() == {"code": "entity.not_exists_with_id",
                               "message": "The hooks with ID `nope` does not exist."}


async def test_patch_replaces_fields_and_config(dispatcher):
    hook = await dispatcher.create_hook("https://example.com/1", config={"url": "https://example.com/1",
                                                                         "headers": {"a": "b"}})
    response = await dispatcher.client.patch(f"/api/hooks/{hook['id']}", json={
        "name": "renamed", "config": {"url": "https://example.com/2"}, "enabled": False, "events": ["PostRegister"]})
    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "renamed" and updated["enabled"] is False
    assert updated["config"] == {"url": "https://example.com/2"}  # replaced as a whole
    assert updated["events"] == ["PostRegister"]
    assert updated["signingKey"] == hook["signingKey"]
    (_, data), = await dispatcher.events("webhooks.hook.updated")
    assert sorted(data["changed"]) == ["config", "enabled", "events", "name"]


async def test_patch_errors(dispatcher):
    missing = await dispatcher.client.patch("/api/hooks/nope", json={"name": "x"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "entity.not_exists"
    assert missing.json()["message"] == "The hook does not exist."
    hook = await dispatcher.create_hook("https://example.com/1")
    empty = await dispatcher.client.patch(f"/api/hooks/{hook['id']}", json={"events": []})
    assert empty.status_code == 400 and empty.json()["code"] == "guard.invalid_input"
    # each was a 500 (found by the schema fuzzer; asyncpg sends year 1 as -infinity)
    for far in (1e20, -1e20, 253_402_300_800_000, -62_135_596_800_000, -1):
        out_of_range = await dispatcher.client.patch(f"/api/hooks/{hook['id']}", json={"createdAt": far})
        assert out_of_range.status_code == 400 and out_of_range.json()["code"] == "guard.invalid_input", far
    assert (await dispatcher.client.get(f"/api/hooks/{hook['id']}")).json()["createdAt"] == hook["createdAt"]
    for edge in (0, 253_402_300_799_999):
        kept = await dispatcher.client.patch(f"/api/hooks/{hook['id']}", json={"createdAt": edge})
        assert kept.status_code == 200 and kept.json()["createdAt"] == edge, kept.text


async def test_signing_key_is_replaced(dispatcher):
    hook = await dispatcher.create_hook("https://example.com/1")
    response = await dispatcher.client.patch(f"/api/hooks/{hook['id']}/signing-key")
    assert response.status_code == 200
    assert response.json()["signingKey"] != hook["signingKey"] and len(response.json()["signingKey"]) == 21
    (_, data), = await dispatcher.events("webhooks.hook.updated")
    assert data["changed"] == ["signingKey"] and response.json()["signingKey"] not in str(data)
    missing = await dispatcher.client.patch("/api/hooks/nope/signing-key")
    assert missing.status_code == 404 and missing.json()["code"] == "entity.not_exists"


async def test_delete(dispatcher):
    hook = await dispatcher.create_hook("https://example.com/1")
    response = await dispatcher.client.delete(f"/api/hooks/{hook['id']}")
    assert response.status_code == 204 and response.content == b""
    assert (await dispatcher.client.get(f"/api/hooks/{hook['id']}")).status_code == 404
    again = await dispatcher.client.delete(f"/api/hooks/{hook['id']}")
    assert again.status_code == 404 and again.json()["code"] == "entity.not_found"
    assert [d for _, d in await dispatcher.events("webhooks.hook.deleted")] == [{"hook_id": hook["id"]}]


async def test_recent_logs_of_unknown_hook_is_empty(dispatcher):
    response = await dispatcher.client.get("/api/hooks/nope/recent-logs")
    assert response.status_code == 200 and response.json() == []
    assert response.headers["total-number"] == "0"


async def test_the_http_client_is_loaded_only_once_there_is_a_hook(dispatcher, receiver):
    """A dispatcher without hooks never imports aiohttp (~7 MB); creating one answers once it is
    (a replica starting where a hook exists: test_delivery)."""
    sender = dispatcher.scheduler.sender
    assert sender._imported is None  # its start looked for hooks: none
    await dispatcher.create_hook(receiver.url)
    assert sender._imported is not None and sender._imported.done() and not sender._imported.exception()


async def test_a_hook_is_created_even_if_its_http_client_cannot_be_loaded(dispatcher, receiver, monkeypatch):
    async def broken() -> None:
        raise ImportError("aiohttp is broken here")

    monkeypatch.setattr(dispatcher.scheduler.sender, "ready", broken)
    response = await dispatcher.client.post("/api/hooks", json={"events": ["PostSignIn"],
                                                                "config": {"url": receiver.url}})
    assert response.status_code == 201
    found = await dispatcher.client.get(f"/api/hooks/{response.json()['id']}")
    assert found.status_code == 200 and found.json()["config"]["url"] == receiver.url
