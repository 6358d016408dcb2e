"""`/api/applications*` (except `/api/applications/:id/roles*`, which rbac owns): Logto §3.1.

Create answers 200, delete 204. Missing ids: GET 404 `entity.not_exists_with_id`, PATCH 404
`entity.not_exists`, DELETE 404 `entity.not_found` (Logto's three different codes).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath

from tessera_identity.applications import service, store
from tessera_identity.applications.domain import (
    DEMO_APP_ID,
    demo_application,
    guard_create,
    guard_update,
    public_application,
)
from tessera_identity.validation import ABSENT, read_object
from tessera_kit.app import Ctx
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant

TAGS = ["Applications"]


@get("/api/applications", operation_id="ListApplications", tags=TAGS)
async def list_applications(request: Request, ctx: Ctx) -> Response:
    page = parse_page(request.query_params)
    async with ctx.pool.acquire() as conn:
        total, rows = await store.find_applications(conn, current_tenant(), page.limit, page.offset)
    return paginated(request, page, [public_application(r) for r in rows], total)


@post("/api/applications", operation_id="CreateApplication", tags=TAGS, status_code=200)
async def create_application(request: Request, ctx: Ctx) -> dict[str, Any]:
    values = guard_create(await read_object(request))
    return public_application(await service.create_application(ctx, values))


@get("/api/applications/{id:str}", operation_id="GetApplication", tags=TAGS)
async def get_application(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 (Logto's name)
    if id == DEMO_APP_ID:
        return demo_application(current_tenant())
    row = await service.get_application(ctx, id)
    return {**public_application(row), "isAdmin": await service.is_admin(ctx, id)}


@patch("/api/applications/{id:str}", operation_id="UpdateApplication", tags=TAGS)
async def update_application(request: Request, ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    changes, is_admin = guard_update(await read_object(request))
    row, admin_state = await service.update_application(
        ctx, id, changes, None if is_admin is ABSENT else is_admin
    )
    body = public_application(row)
    if admin_state is not None:
        # Logto leaves isAdmin out of PATCH answers; when it was changed, say how it stands.
        body["isAdmin"] = admin_state
    return body


@delete("/api/applications/{id:str}", operation_id="DeleteApplication", tags=TAGS, status_code=204)
async def delete_application(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    await service.delete_application(ctx, id)


handlers: list = [list_applications, create_application, get_application, update_application, delete_application]
