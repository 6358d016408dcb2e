"""Beyond Logto: a hook's deliveries with their attempts, and sending one again now."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery

from tessera_kit.app import Ctx
from tessera_kit.errors import RequestError, not_found as not_exists_with_id
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant
from tessera_webhook_dispatcher.deliveries import store
from tessera_webhook_dispatcher.hooks import store as hooks

TAGS = ["Hooks"]
DeliveryStatus = Literal["pending", "succeeded", "exhausted"]


async def _require_hook(conn, ctx, hook_id: str) -> None:
    if await hooks.find_hook(conn, current_tenant(), hook_id) is None:
        raise not_exists_with_id("hooks", hook_id)


@get("/api/hooks/{id:str}/deliveries", operation_id="ListHookDeliveries", tags=TAGS,
     summary="Get a hook's deliveries",
     description="Newest first, paginated, optionally by `status` (pending, succeeded, exhausted). Each "
                 "delivery has its stable `id` (the `webhook-id` header), the exact `body` sent, and its "
                 "`attempts` with their outcome.")
async def list_deliveries(request: Request, ctx: Ctx, id: FromPath[str],  # noqa: A002
                          status: FromQuery[DeliveryStatus | None] = None) -> Response:
    page = parse_page(request.query_params)
    # One snapshot: a delivery and its attempts as of the same moment (an attempt recorded
    # between two reads would show beside the delivery row of before it).
    async with ctx.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await _require_hook(conn, ctx, id)
        total, rows = await store.list_deliveries(
            conn, current_tenant(), id, limit=page.limit, offset=page.offset, status=status)
    return paginated(request, page, rows, total)


@get("/api/hooks/{id:str}/deliveries/{delivery_id:str}", operation_id="GetHookDelivery", tags=TAGS,
     summary="Get a delivery with its attempts")
async def get_delivery(ctx: Ctx, id: FromPath[str], delivery_id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    async with ctx.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        delivery = await store.find_delivery(conn, current_tenant(), id, delivery_id)
    if delivery is None:
        raise not_exists_with_id("deliveries", delivery_id)
    return delivery


@post("/api/hooks/{id:str}/deliveries/{delivery_id:str}/retry", operation_id="RetryHookDelivery", tags=TAGS,
      status_code=202, summary="Send a delivery again now",
      description="Makes the delivery due now (one more attempt if it had used them all), with the same "
                  "id and body. 409 `hook.delivery_in_flight` while an attempt is being made.")
async def retry_delivery(ctx: Ctx, id: FromPath[str], delivery_id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.find_delivery(conn, current_tenant(), id, delivery_id) is None:
            raise not_exists_with_id("deliveries", delivery_id)
        if not await store.retry_now(conn, current_tenant(), id, delivery_id, ctx.extras["clock"].now()):
            raise RequestError("hook.delivery_in_flight", 409)
        delivery = await store.find_delivery(conn, current_tenant(), id, delivery_id)
        await ctx.extras["scheduler"].wake_all(conn)
    return delivery


route_handlers = [list_deliveries, get_delivery, retry_delivery]
