"""`/api/logs` and `/api/dashboard/users/*` (Logto §3.7, OpenAPI "Logs" and "Dashboard").

How many users there are, and were created when, is asked of identity (USER_COUNTS): the copy
kept here from identity's events is milliseconds late, and an admin who has just created a
user expects to see it counted. The copy answers while identity is away."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from tessera_audit_log import store
from tessera_audit_log.domain import CountDelta, count_delta, parse_day
from tessera_events.epoch_ms import from_ms
from tessera_events.contracts.identity import USER_COUNTS, UserCounts, UserCountsRequest
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.errors import ValidationIssue, invalid_input, not_found
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant


@get("/api/logs", operation_id="ListLogs", tags=["Logs"])
async def list_logs(
    request: Request, ctx: Ctx, userId: FromQuery[str | None] = None,  # noqa: N803 (Logto's names)
    applicationId: FromQuery[str | None] = None, logKey: FromQuery[str | None] = None,  # noqa: N803
) -> Response:
    page = parse_page(request.query_params)
    total, rows = await store.find_logs(
        ctx.pool, current_tenant(), user_id=userId, application_id=applicationId,
        key=logKey, limit=page.limit, offset=page.offset,
    )
    return paginated(request, page, rows, total)


@get("/api/logs/{log_id:str}", operation_id="GetLog", tags=["Logs"])
async def get_log(ctx: Ctx, log_id: FromPath[str]) -> dict[str, Any]:
    row = await store.find_log(ctx.pool, current_tenant(), log_id)
    if row is None:
        raise not_found("logs", log_id)
    return row


async def _identitys_counts(ctx: ServiceContext, windows: list[tuple[int, int]]) -> UserCounts | None:
    """identity's figures (windows in epoch milliseconds); None while it cannot answer (503)."""
    return await ctx.call_unless_away(USER_COUNTS, UserCountsRequest(windows=windows, tenant_id=current_tenant()))


@get("/api/dashboard/users/total", operation_id="GetTotalUserCount", tags=["Dashboard"])
async def total_users(ctx: Ctx) -> dict[str, int]:
    counts = await _identitys_counts(ctx, [])
    total = counts.total if counts is not None else await store.count_users(ctx.pool, current_tenant())
    return {"totalUserCount": total}


@get("/api/dashboard/users/new", operation_id="GetNewUserCounts", tags=["Dashboard"])
async def new_users(ctx: Ctx) -> dict[str, CountDelta]:
    now = time.time_ns() // 1_000_000  # one integer: adjacent windows share their bounds exactly
    day, week = 86_400_000, 7 * 86_400_000
    # today, the day before, the last 7 days, the 7 before
    windows = [(now - day, now), (now - 2 * day, now - day), (now - week, now), (now - 2 * week, now - week)]
    counts = await _identitys_counts(ctx, windows)
    if counts is not None:
        created = counts.created
    else:
        created = [await store.count_new_users(ctx.pool, current_tenant(), from_ms(since), from_ms(until))
                   for since, until in windows]
    return {"today": count_delta(created[0], created[1]), "last7Days": count_delta(created[2], created[3])}


@get("/api/dashboard/users/active", operation_id="GetActiveUserCounts", tags=["Dashboard"])
async def active_users(ctx: Ctx, date: FromQuery[str | None] = None) -> dict[str, Any]:
    day = parse_day(date, dt.datetime.now(dt.timezone.utc).date())
    if day is None:
        raise invalid_input("query", [ValidationIssue("date", "invalid_string", "Invalid")])
    tenant, one = current_tenant(), dt.timedelta(days=1)

    async def distinct(days: int, ending: dt.date) -> int:
        return await store.distinct_active(ctx.pool, tenant, ending - (days - 1) * one, ending)

    curve_start = day - 13 * one
    daily = await store.daily_active(ctx.pool, tenant, curve_start - one, day)
    curve = [
        {"date": (curve_start + i * one).isoformat(), "count": daily.get(curve_start + i * one, 0)}
        for i in range(14)
    ]
    return {
        "dauCurve": curve,
        "dau": count_delta(daily.get(day, 0), daily.get(day - one, 0)),
        "wau": count_delta(await distinct(7, day), await distinct(7, day - 7 * one)),
        "mau": count_delta(await distinct(30, day), await distinct(30, day - 30 * one)),
    }


route_handlers = [list_logs, get_log, total_users, new_users, active_users]
