"""`POST /api/verification-codes` and `/api/verification-codes/verify` (Management API,
Logto 1.6): Generic codes, keyed on the recipient instead of an interaction (§4.6)."""

from __future__ import annotations

import msgspec
from litestar import Request, Router, post

from tessera_experience.interaction.guards import parse_code_request, parse_code_verification, read_body
from tessera_experience.interaction.routes import BODY_MAX_BYTES
from tessera_experience.verification_codes.domain import GENERIC
from tessera_experience.verification_codes.service import VerificationCodes
from tessera_kit.app import Ctx
from tessera_kit.openapi_docs import error_response
from tessera_kit.ratelimit import client_ip

TAGS = ["Verification Codes"]


class CodeRecipient(msgspec.Struct, kw_only=True):
    """One of `email` or `phone`."""

    email: str | msgspec.UnsetType = msgspec.UNSET
    phone: str | msgspec.UnsetType = msgspec.UNSET


class CodeVerification(CodeRecipient, kw_only=True, rename="camel"):
    verification_code: str


DOCUMENTED_BODIES = {"CreateVerificationCode": CodeRecipient, "VerifyVerificationCode": CodeVerification}
# read_body's 415, as the interaction API documents it (the kit adds 400/413/422 to every write).
_UNSUPPORTED_MEDIA_TYPE = {"responses": {"415": error_response(
    "A body that is neither JSON nor a urlencoded form (`guard.mime_type_not_allowed`).")}}
DOCUMENTED_OPERATIONS = {operation: _UNSUPPORTED_MEDIA_TYPE for operation in DOCUMENTED_BODIES}


def _ip(request: Request) -> str | None:
    return client_ip(request.headers, request.client.host if request.client else None)


@post("/api/verification-codes", operation_id="CreateVerificationCode", tags=TAGS, status_code=204)
async def create_verification_code(request: Request, ctx: Ctx) -> None:
    target = parse_code_request(read_body(await request.body(), request.headers.get("content-type")))
    await VerificationCodes(ctx).send(interaction_uid=None, type_=GENERIC, target=target, ip=_ip(request))


@post("/api/verification-codes/verify", operation_id="VerifyVerificationCode", tags=TAGS, status_code=204)
async def verify_verification_code(request: Request, ctx: Ctx) -> None:
    target, code = parse_code_verification(read_body(await request.body(), request.headers.get("content-type")))
    (kind, value), = target.items()
    await VerificationCodes(ctx).verify(interaction_uid=None, type_=GENERIC, kind=kind, value=value, code=code,
                                        ip=_ip(request))


# A recipient and a code, like the interaction API's bodies: a larger one is refused (413) unread.
route_handlers = [Router("/", route_handlers=[create_verification_code, verify_verification_code],
                         request_max_body_size=BODY_MAX_BYTES)]
