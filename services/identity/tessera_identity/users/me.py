"""`/me*` of the admin tenant (Logto's Me API): the signed-in console user's own account.

The gateway of the admin endpoint lets a request through only with a token for the Me API
resource (`https://admin.logto.app/me`, scope `all`) and names its subject in the assertion;
here the caller must be a user, and the route exists in the admin tenant only.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, patch

from tessera_identity.users import service
from tessera_identity.users.domain import public_user
from tessera_identity.validation import read_object
from tessera_kit.app import Ctx
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.context import current_actor, current_tenant
from tessera_kit.errors import RequestError

TAGS = ["Me"]


def _me() -> str:
    if current_tenant() != ADMIN_TENANT:
        raise RequestError("entity.not_found", 404)
    caller = current_actor()
    if caller.type != "user" or not caller.id:
        raise RequestError("auth.forbidden", 403)
    return caller.id


@get("/me", operation_id="GetMe", tags=TAGS, include_in_schema=False)
async def get_me(ctx: Ctx) -> dict[str, Any]:
    return public_user(await service.get_user(ctx, _me()))


@get("/me/custom-data", operation_id="GetMeCustomData", tags=TAGS, include_in_schema=False)
async def get_custom_data(ctx: Ctx) -> dict[str, Any]:
    return (await service.get_user(ctx, _me()))["custom_data"]


@patch("/me/custom-data", operation_id="UpdateMeCustomData", tags=TAGS, include_in_schema=False)
async def update_custom_data(request: Request, ctx: Ctx) -> dict[str, Any]:
    """The body is merged into the user's custom data (top-level keys), as Logto's Me API does."""
    user_id = _me()
    body = await read_object(request)
    return (await service.merge_custom_data(ctx, user_id, body))["custom_data"]


handlers: list = [get_me, get_custom_data, update_custom_data]
