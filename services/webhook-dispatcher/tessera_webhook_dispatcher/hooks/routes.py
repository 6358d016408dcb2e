"""`/api/hooks*` (Logto §3.11): hooks, their signing key, recent logs and test calls."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import UNSET

from tessera_events.epoch_ms import from_ms
from tessera_events.webhooks import HookCreated, HookDeleted, HookSnapshot, HookUpdated
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.errors import RequestError, not_found as not_exists_with_id
from tessera_kit.http import paginated
from tessera_kit.ids import new_id
from tessera_kit.logging import get_logger
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant
from tessera_webhook_dispatcher.deliveries import store as deliveries
from tessera_webhook_dispatcher.deliveries.domain import log_payload, request_headers
from tessera_webhook_dispatcher.hooks import store
from tessera_webhook_dispatcher.hooks.domain import (
    CreateHook,
    TestHook,
    UpdateHook,
    config_json,
    missing_events,
    test_payload,
    truthy,
    unique_events,
)
from tessera_webhook_dispatcher.ssrf import check_url

TAGS = ["Hooks"]
DAY = dt.timedelta(days=1)

log = get_logger(__name__)


def _now(ctx: ServiceContext) -> dt.datetime:
    return ctx.extras["clock"].now()


def _snapshot(hook: dict[str, Any]) -> HookSnapshot:
    return HookSnapshot(id=hook["id"], name=hook["name"], event=hook["event"], events=list(hook["events"]),
                        url=hook["config"].get("url", ""), enabled=hook["enabled"], created_at=hook["createdAt"])


async def _announce(ctx: ServiceContext, conn: asyncpg.Connection, event: Any, hook_id: str) -> None:
    await ctx.outbox.emit(conn, event, aggregate_id=hook_id, tenant_id=current_tenant())


async def _with_stats(ctx: ServiceContext, conn: asyncpg.Connection, hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = await deliveries.stats(conn, [h["id"] for h in hooks], _now(ctx) - DAY)
    return [{**h, "executionStats": found[h["id"]]} for h in hooks]


@get("/api/hooks", operation_id="ListHooks", tags=TAGS, summary="Get hooks",
     description="Newest first; paginated only when `page` or `page_size` is given. With a truthy "
                 "`includeExecutionStats`, each hook has `executionStats` over the last 24 hours.")
async def list_hooks(request: Request, ctx: Ctx, includeExecutionStats: FromQuery[str | None] = None) -> Response:  # noqa: N803
    page = parse_page(request.query_params, optional=True)
    async with ctx.pool.acquire() as conn:
        total, hooks = await store.list_hooks(
            conn, current_tenant(), limit=page.limit if page else None, offset=page.offset if page else 0)
        if truthy(includeExecutionStats):
            hooks = await _with_stats(ctx, conn, hooks)
    return paginated(request, page, hooks, total)


@post("/api/hooks", operation_id="CreateHook", tags=TAGS, status_code=201, summary="Create a hook",
      description="`events` (or the legacy `event`) is required. The URL may not point to a loopback, "
                  "private, link-local or metadata address (400) unless the deployment allows it.")
async def create_hook(data: JSONBody[CreateHook], ctx: Ctx) -> dict[str, Any]:
    if not data.event and not data.events:
        raise missing_events()
    check_url(data.config.url, allow_private=ctx.settings.webhooks_allow_private)
    fields = {
        "name": data.name if data.name is not UNSET else "",
        "event": data.event if isinstance(data.event, str) else None,
        "events": unique_events(data.events) if data.events is not UNSET else [],
        "config": config_json(data.config),
        "enabled": data.enabled,
        "created_at": from_ms(data.created_at) if data.created_at is not UNSET else None,
    }
    async with ctx.pool.acquire() as conn, conn.transaction():
        hook = await store.insert_hook(conn, current_tenant(), fields)
        await _announce(ctx, conn, HookCreated(hook=_snapshot(hook)), hook["id"])
    # Its HTTP client is loaded before the answer, so the first delivery is not late (sender.py);
    # the hook is created either way (a failed import is tried again by the first delivery).
    try:
        async with asyncio.timeout(10):  # a stalled import holds no answer for long
            await ctx.extras["scheduler"].sender.ready()
    except Exception as exc:
        log.warning("webhook client not loaded yet", error=repr(exc))
    return hook


@get("/api/hooks/{id:str}", operation_id="GetHook", tags=TAGS, summary="Get a hook",
     description="Any non-empty `includeExecutionStats` (even `false`, as Logto) adds `executionStats`.")
async def get_hook(ctx: Ctx, id: FromPath[str], includeExecutionStats: FromQuery[str | None] = None) -> dict[str, Any]:  # noqa: A002,N803
    async with ctx.pool.acquire() as conn:
        hook = await store.find_hook(conn, current_tenant(), id)
        if hook is None:
            raise not_exists_with_id("hooks", id)
        if includeExecutionStats:
            hook = (await _with_stats(ctx, conn, [hook]))[0]
    return hook


@patch("/api/hooks/{id:str}", operation_id="UpdateHook", tags=TAGS, summary="Update a hook",
       description="Fields given replace the stored ones (`config` as a whole).")
async def update_hook(data: JSONBody[UpdateHook], ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    if data.config is not UNSET:
        check_url(data.config.url, allow_private=ctx.settings.webhooks_allow_private)
    given = {
        "name": data.name, "event": data.event,
        "events": unique_events(data.events) if data.events is not UNSET else UNSET,
        "config": config_json(data.config) if data.config is not UNSET else UNSET,
        "enabled": data.enabled, "createdAt": data.created_at,
    }
    given = {k: v for k, v in given.items() if v is not UNSET}
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.find_hook(conn, current_tenant(), id, lock=True)
        if current is None:
            raise RequestError("entity.not_exists", 404, name="hook")
        hook = await store.update_hook(conn, current_tenant(), id, given)
        changed = [k for k, v in given.items() if k != "createdAt" and current.get(k) != v]
        if changed:
            await _announce(ctx, conn, HookUpdated(hook=_snapshot(hook), changed=changed), id)
        if "enabled" in changed and hook["enabled"]:
            await ctx.extras["scheduler"].wake_all(conn)  # its waiting deliveries are due again
    return hook


@patch("/api/hooks/{id:str}/signing-key", operation_id="UpdateHookSigningKey", tags=TAGS,
       summary="Replace a hook's signing key")
async def update_signing_key(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    async with ctx.pool.acquire() as conn, conn.transaction():
        hook = await store.replace_signing_key(conn, current_tenant(), id)
        if hook is None:
            raise RequestError("entity.not_exists", 404, name="hook")
        await _announce(ctx, conn, HookUpdated(hook=_snapshot(hook), changed=["signingKey"]), id)
    return hook


@delete("/api/hooks/{id:str}", operation_id="DeleteHook", tags=TAGS, status_code=204, summary="Delete a hook",
        description="Its deliveries, pending or not, go with it.")
async def delete_hook(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await store.delete_hook(conn, current_tenant(), id):
            raise RequestError("entity.not_found", 404)
        await _announce(ctx, conn, HookDeleted(hook_id=id), id)


@get("/api/hooks/{id:str}/recent-logs", operation_id="ListHookRecentLogs", tags=TAGS,
     summary="Get a hook's recent logs",
     description="`TriggerHook.<event>` log entries of the last 24 hours, one per attempt, newest first.")
async def recent_logs(request: Request, ctx: Ctx, id: FromPath[str], logKey: FromQuery[str | None] = None) -> Response:  # noqa: A002,N803
    page = parse_page(request.query_params)
    async with ctx.pool.acquire() as conn:
        total, rows = await deliveries.recent_attempts(
            conn, current_tenant(), id, since=_now(ctx) - DAY, key=logKey, limit=page.limit, offset=page.offset)
    logs = [
        {
            "tenantId": r["tenant_id"], "id": r["id"], "key": f"TriggerHook.{r['event']}",
            "payload": log_payload(r["hook_id"], r["event"], r["body"], r["result"], r["response"], r["error"]),
            "createdAt": int(r["created_at"].timestamp() * 1000),
        }
        for r in rows
    ]
    return paginated(request, page, logs, total)


@post("/api/hooks/{id:str}/test", operation_id="TestHook", tags=TAGS, status_code=204,
      summary="Send test payloads",
      description="One signed test payload per event to the request's `config.url`. Any HTTP answer is "
                  "204; a network failure is 422 `hook.send_test_payload_failed`. Nothing is logged.")
async def test_hook(data: JSONBody[TestHook], ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    check_url(data.config.url, allow_private=ctx.settings.webhooks_allow_private)
    async with ctx.pool.acquire() as conn:
        hook = await store.find_hook(conn, current_tenant(), id)
    if hook is None:
        raise not_exists_with_id("hooks", id)
    sender = ctx.extras["scheduler"].sender
    custom = data.config.headers if data.config.headers is not UNSET else None
    for event in unique_events(data.events):
        now = _now(ctx)
        body = test_payload(id, event, now)
        headers = request_headers(signing_key=hook["signingKey"], custom=custom, body=body,
                                  message_id=new_id(), now=now)
        outcome = await sender.post(data.config.url, headers, body)
        if outcome.status_code is None:
            raise RequestError("hook.send_test_payload_failed", 422, message=outcome.error)


route_handlers = [list_hooks, create_hook, get_hook, update_hook, update_signing_key, delete_hook, recent_logs, test_hook]
