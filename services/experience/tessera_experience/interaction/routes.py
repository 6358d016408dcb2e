"""The interaction API (`/api/interaction*`, Logto §4.2): anonymous, tied to the browser by
the `_interaction` cookie that identity's `/oidc/auth` set. Thin: parsing and statuses here,
behaviour in `service.py`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, patch, post, put

from tessera_experience.interaction.guards import read_body
from tessera_experience.interaction.logs import Caller
from tessera_experience.interaction.service import InteractionService
from tessera_kit.app import Ctx
from tessera_kit.csrf import same_origin
from tessera_kit.ratelimit import client_ip

INTERACTION_COOKIE = "_interaction"
TAGS = ["Interaction"]
# Interaction bodies are a few identifiers and a password; a larger one is refused (413)
# before it is read, let alone parsed.
BODY_MAX_BYTES = 16 * 1024


def caller_of(request: Request) -> Caller:
    # The hop the gateway appended: the earlier ones are whatever the client chose to send.
    ip = client_ip(request.headers, request.client.host if request.client else None)
    return Caller(cookie=request.cookies.get(INTERACTION_COOKIE),
                  cookie_signature=request.cookies.get(f"{INTERACTION_COOKIE}.sig"), ip=ip,
                  user_agent=request.headers.get("user-agent"))


async def body_of(request: Request) -> Any:
    return read_body(await request.body(), request.headers.get("content-type"))


@put("/api/interaction", operation_id="PutInteraction", tags=TAGS, status_code=204)
async def put_interaction(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).start(caller_of(request), await body_of(request))


@delete("/api/interaction", operation_id="DeleteInteraction", tags=TAGS, status_code=200)
async def delete_interaction(request: Request, ctx: Ctx) -> dict[str, str]:
    return {"redirectTo": await InteractionService(ctx).abort(caller_of(request))}


@put("/api/interaction/event", operation_id="PutInteractionEvent", tags=TAGS, status_code=204)
async def put_event(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).change_event(caller_of(request), await body_of(request))


@patch("/api/interaction/identifiers", operation_id="PatchInteractionIdentifiers", tags=TAGS, status_code=204)
async def patch_identifiers(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).add_identifier(caller_of(request), await body_of(request))


@put("/api/interaction/profile", operation_id="PutInteractionProfile", tags=TAGS, status_code=204)
async def put_profile(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).set_profile(caller_of(request), await body_of(request), merge=False)


@patch("/api/interaction/profile", operation_id="PatchInteractionProfile", tags=TAGS, status_code=204)
async def patch_profile(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).set_profile(caller_of(request), await body_of(request), merge=True)


@delete("/api/interaction/profile", operation_id="DeleteInteractionProfile", tags=TAGS, status_code=204)
async def delete_profile(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).delete_profile(caller_of(request))


@post("/api/interaction/submit", operation_id="SubmitInteraction", tags=TAGS, status_code=200)
async def submit(request: Request, ctx: Ctx) -> Response:
    redirect = await InteractionService(ctx).submit(caller_of(request))
    return Response(None, status_code=204) if redirect is None else Response({"redirectTo": redirect})


@post("/api/interaction/consent", operation_id="ConsentInteraction", tags=TAGS, status_code=200)
async def consent(request: Request, ctx: Ctx) -> dict[str, str]:
    return {"redirectTo": await InteractionService(ctx).consent(caller_of(request))}


@post("/api/interaction/verification/verification-code", operation_id="CreateInteractionVerificationCode",
      tags=TAGS, status_code=204)
async def send_verification_code(request: Request, ctx: Ctx) -> None:
    await InteractionService(ctx).send_code(caller_of(request), await body_of(request))


@post("/api/interaction/verification/social-authorization-uri", operation_id="CreateInteractionSocialAuthorizationUri",
      tags=TAGS, status_code=200)
async def social_authorization_uri(request: Request, ctx: Ctx) -> dict[str, str]:
    redirect = await InteractionService(ctx).social_authorization_uri(caller_of(request), await body_of(request))
    return {"redirectTo": redirect}


route_handlers = [Router("/", route_handlers=[
    put_interaction, delete_interaction, put_event, patch_identifiers, put_profile, patch_profile, delete_profile,
    submit, consent, send_verification_code, social_authorization_uri,
], request_max_body_size=BODY_MAX_BYTES, guards=[same_origin])]
