"""The interaction API in the OpenAPI document (Logto §4.2): the bodies `guards.py` reads and
the statuses `service.py` answers, so that a client generated from the document can drive a
sign-in. The routes read their bodies themselves (Logto's exact validation details), so this
is documentation only, applied by the kit (`ServiceSpec.documented_operations`).
"""

from __future__ import annotations

from typing import Any

from tessera_experience.interaction.guards import EVENTS, MAX_LENGTH
from tessera_kit.openapi_docs import error_response
from tessera_kit.regexes import PASSWORD_MIN_LENGTH


def _string(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": MAX_LENGTH[name], **extra}


_PASSWORD = _string("password", minLength=1)
_CODE = _string("verificationCode", minLength=1)
_EMAIL = _string("email", format="email")


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


IDENTIFIER: dict[str, Any] = {
    "description": "One way of proving who the visitor is; Logto tries these shapes in order.",
    "oneOf": [
        _object(["username", "password"], username=_string("username", minLength=1), password=_PASSWORD),
        _object(["email", "password"], email=_string("email", minLength=1), password=_PASSWORD),
        _object(["phone", "password"], phone=_string("phone", minLength=1), password=_PASSWORD),
        _object(["email", "verificationCode"], email=_EMAIL, verificationCode=_CODE),
        _object(["phone", "verificationCode"], phone=_string("phone"), verificationCode=_CODE),
        _object(["connectorId", "connectorData"], connectorId=_string("connectorId"),
                connectorData={"type": "object", "additionalProperties": True}),
        _object(["connectorId", "email"], connectorId=_string("connectorId"), email=_EMAIL),
        _object(["connectorId", "phone"], connectorId=_string("connectorId"), phone=_string("phone")),
    ],
}
PROFILE: dict[str, Any] = {
    "type": "object",
    "description": "What a registration or a password reset adds to the account.",
    "properties": {
        "username": _string("username"), "email": _string("email", format="email"),
        "phone": _string("phone"), "connectorId": _string("connectorId"),
        "password": _string("password", minLength=PASSWORD_MIN_LENGTH),
    },
}
EVENT: dict[str, Any] = {"type": "string", "enum": list(EVENTS)}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


# The `_interaction` cookie (and its `.sig`) that `/oidc/auth` set ties a request to its
# interaction; the browser sends it, so it is not a parameter a client fills in.
_DESCRIPTION = ("Anonymous: the `_interaction` cookie `/oidc/auth` set names the interaction. A write "
                "with that cookie must come from the sign-in page's own origin.")
_REDIRECT = {"description": "Where the browser goes next.", "content": {
    "application/json": {"schema": _object(["redirectTo"], redirectTo={"type": "string"})}}}
_DONE = {"description": "Done."}
_ERRORS = {
    "400": error_response("Invalid input, no interaction for this cookie (`session.not_found`), or a "
                          "failed verification."),
    "401": error_response("The account is suspended (`user.suspended`)."),
    "403": error_response("A write from another origin with the interaction cookie (`auth.forbidden`)."),
    "404": error_response("The account, identifier or verification the step needs does not exist."),
    "413": error_response("The body is over 16 KiB."),
    "415": error_response("A body that is neither JSON nor a urlencoded form "
                          "(`guard.mime_type_not_allowed`)."),
    "422": error_response("The step breaks a rule: an identifier in use, a method not enabled, a "
                          "missing profile field."),
}


def _operation(body: dict[str, Any] | None, success: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fragment: dict[str, Any] = {"description": _DESCRIPTION, "responses": {**success, **_ERRORS},
                                "replaceResponses": True}
    if body is not None:
        fragment["requestBody"] = _json_body(body)
    return fragment


INTERACTION_OPERATIONS: dict[str, dict[str, Any]] = {
    "PutInteraction": _operation(
        _object(["event"], event=EVENT, identifier=IDENTIFIER, profile=PROFILE), {"204": _DONE}),
    "DeleteInteraction": _operation(None, {"200": _REDIRECT}),
    "PutInteractionEvent": _operation(_object(["event"], event=EVENT), {"204": _DONE}),
    "PatchInteractionIdentifiers": _operation(IDENTIFIER, {"204": _DONE}),
    "PutInteractionProfile": _operation(PROFILE, {"204": _DONE}),
    "PatchInteractionProfile": _operation(PROFILE, {"204": _DONE}),
    "DeleteInteractionProfile": _operation(None, {"204": _DONE}),
    "SubmitInteraction": _operation(None, {"200": _REDIRECT, "204": {
        "description": "Nothing to redirect to (a password reset done)."}}),
    "ConsentInteraction": _operation(None, {"200": _REDIRECT}),
    "CreateInteractionVerificationCode": _operation({"oneOf": [
        _object(["email"], email=_string("email", format="email")),
        _object(["phone"], phone=_string("phone")),
    ]}, {"204": _DONE}),
    "CreateInteractionSocialAuthorizationUri": _operation(_object(
        ["connectorId", "state", "redirectUri"], connectorId=_string("connectorId"), state=_string("state"),
        redirectUri=_string("redirectUri", format="uri")), {"200": _REDIRECT}),
}
