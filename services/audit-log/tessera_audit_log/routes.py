"""`/api/logs` and `/api/dashboard/users/*` (Logto §3.7, OpenAPI "Logs" and "Dashboard")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery

from tessera_audit_log import store
from tessera_audit_log.domain import CountDelta, count_delta, parse_day
from tessera_kit.app import Ctx
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


@get("/api/dashboard/users/total", operation_id="GetTotalUserCount", tags=["Dashboard"])
async def total_users(ctx: Ctx) -> dict[str, int]:
    return {"totalUserCount": await store.count_users(ctx.pool, current_tenant())}


@get("/api/dashboard/users/new", operation_id="GetNewUserCounts", tags=["Dashboard"])
async def new_users(ctx: Ctx) -> dict[str, CountDelta]:
    now = dt.datetime.now(dt.timezone.utc)
    day, week = dt.timedelta(days=1), dt.timedelta(days=7)

    async def count(since: dt.timedelta, until: dt.timedelta = dt.timedelta(0)) -> int:
        return await store.count_new_users(ctx.pool, current_tenant(), now - since, now - until)

    return {
        "today": count_delta(await count(day), await count(2 * day, day)),
        "last7Days": count_delta(await count(week), await count(2 * week, week)),
    }


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
