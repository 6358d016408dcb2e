"""The OIDC provider's routes in the OpenAPI document: their real parameters, form bodies,
statuses and media types (RFC 6749, 7009, 7662, OIDC Core and RP-Initiated Logout), with
OAuth's `{error, error_description}` as the error body. The routes read their parameters
themselves (`params.py`), so this is documentation only, applied by the kit
(`ServiceSpec.documented_operations`).
"""

from __future__ import annotations

from typing import Any

OAUTH_ERROR: dict[str, Any] = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string", "description": "An RFC 6749 §5.2 error code."},
                   "error_description": {"type": "string"}},
}
_STRING = {"type": "string", "maxLength": 2048}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": OAUTH_ERROR}}}


def _fields(required: tuple[str, ...], **fields: str) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {name: {**_STRING, "description": text} for name, text in fields.items()}}


def _form(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def _query(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "query", "required": name in schema["required"], "schema": {
        k: v for k, v in prop.items() if k != "description"}, "description": prop["description"]}
        for name, prop in schema["properties"].items()]


_CLIENT = {
    "client_id": "The client (or HTTP Basic authentication).",
    "client_secret": "A confidential client's secret (or HTTP Basic authentication).",
}
AUTHORIZATION = _fields(
    ("client_id", "response_type", "redirect_uri"),
    client_id="The client.", response_type="`code`.", redirect_uri="One of the client's redirect URIs.",
    scope="Space-separated scopes; `openid` for an ID token.", state="Echoed to the redirect URI.",
    nonce="Echoed in the ID token.", prompt="`login`, `consent` or `none`.",
    code_challenge="PKCE challenge.", code_challenge_method="`S256`.",
    resource="An API resource indicator (RFC 8707).", response_mode="`query` or `form_post`.",
    interaction_mode="`signIn` or `signUp` (Logto).", login_hint="A hint for the sign-in page.",
)
TOKEN = _fields(
    ("grant_type",),
    grant_type="`authorization_code`, `refresh_token` or `client_credentials`.",
    code="The authorization code.", redirect_uri="The redirect URI of the authorization request.",
    code_verifier="PKCE verifier.", refresh_token="The refresh token.",
    scope="Scopes to ask for (a subset, on refresh).", resource="An API resource indicator (RFC 8707).",
    client_assertion="A `private_key_jwt` or `client_secret_jwt` assertion.",
    client_assertion_type="`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.", **_CLIENT,
)
TOKEN_ABOUT = _fields(("token",), token="The token.", token_type_hint="`access_token` or `refresh_token`.",
                      **_CLIENT)
END_SESSION = _fields(
    (), id_token_hint="An ID token the provider issued.", post_logout_redirect_uri="Where to go after.",
    state="Echoed to `post_logout_redirect_uri`.", client_id="The client.",
)
TOKEN_SET = {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
    "access_token": {"type": "string"}, "token_type": {"type": "string"}, "expires_in": {"type": "integer"},
    "refresh_token": {"type": "string"}, "id_token": {"type": "string"}, "scope": {"type": "string"}}}
_NO_BODY = {"description": "Done."}
_HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}
_REDIRECT = {"description": "To the sign-in page, or back to the client with a code or an error.",
             "headers": {"location": {"schema": {"type": "string"}}}}
_BAD = _error("An invalid request (`invalid_request`, `invalid_scope`, `unsupported_grant_type`, "
              "`invalid_grant`, ...).")
_CLIENT_FAILED = _error("The client could not be authenticated (`invalid_client`).")
_TOO_LARGE = _error("The body is over 64 KiB.")


def _authorize(get: bool) -> dict[str, Any]:
    fragment: dict[str, Any] = {"replaceResponses": True, "responses": {
        "303": _REDIRECT, "200": {"description": "A `form_post` answer: a page that posts to the client.", **_HTML},
        "400": _error("No such client, or a redirect URI it does not have: told to the user, not the "
                      "client."),
    }}
    if get:
        fragment["parameters"] = _query(AUTHORIZATION)
    else:
        fragment["parameters"] = []
        fragment["requestBody"] = _form(AUTHORIZATION)
        fragment["responses"]["413"] = _TOO_LARGE
    return fragment


def _userinfo(post: bool) -> dict[str, Any]:
    fragment: dict[str, Any] = {"replaceResponses": True, "parameters": [
        {"name": "authorization", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "`Bearer <access token>` (or `access_token` in a POST body)."}],
        "responses": {
            "200": {"description": "The user's claims.", "content": {"application/json": {"schema": {
                "type": "object", "required": ["sub"], "properties": {"sub": {"type": "string"}},
                "additionalProperties": True}}}},
            "400": _BAD, "401": _error("No token, or not a valid one (`invalid_token`)."),
        }}
    if post:
        fragment["requestBody"] = {"required": False, "content": {"application/x-www-form-urlencoded": {
            "schema": _fields((), access_token="The access token.")}}}
        fragment["responses"]["413"] = _TOO_LARGE
    return fragment


def _end_session(get: bool) -> dict[str, Any]:
    fragment: dict[str, Any] = {"replaceResponses": True, "responses": {
        "200": {"description": "The logout confirmation page.", **_HTML},
        "303": {"description": "Already signed out: straight to `post_logout_redirect_uri`.",
                "headers": {"location": {"schema": {"type": "string"}}}},
        "400": _BAD,
    }}
    if get:
        fragment["parameters"] = _query(END_SESSION)
    else:
        fragment["requestBody"] = {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": END_SESSION}}}
        fragment["responses"]["413"] = _TOO_LARGE
    return fragment


OIDC_OPERATIONS: dict[str, dict[str, Any]] = {
    "OidcAuthorizeGet": _authorize(get=True),
    "OidcAuthorizePost": _authorize(get=False),
    "OidcResume": {"replaceResponses": True, "responses": {
        "303": _REDIRECT, "200": {"description": "A `form_post` answer.", **_HTML},
        "400": _error("No interaction with this id for this browser, or it is not finished."),
    }},
    "OidcToken": {"replaceResponses": True, "requestBody": _form(TOKEN), "responses": {
        "200": {"description": "The tokens.", "content": {"application/json": {"schema": TOKEN_SET}}},
        "400": _BAD, "401": _CLIENT_FAILED, "413": _TOO_LARGE,
        "429": {**_error("Too many failed token requests from this address (`invalid_request`); "
                         "`Retry-After` says when to try again (found by the schema fuzzer)."),
                "headers": {"retry-after": {"schema": {"type": "integer"}, "description": "Seconds."}}},
    }},
    "OidcRevoke": {"replaceResponses": True, "requestBody": _form(TOKEN_ABOUT), "responses": {
        "200": {"description": "Revoked, or was not valid (RFC 7009 §2.2).",
                "content": {"text/plain": {"schema": {"type": "string", "maxLength": 0}}}},
        "400": _BAD, "401": _CLIENT_FAILED, "413": _TOO_LARGE,
    }},
    "OidcIntrospect": {"replaceResponses": True, "requestBody": _form(TOKEN_ABOUT), "responses": {
        "200": {"description": "What the token is (RFC 7662 §2.2).", "content": {"application/json": {"schema": {
            "type": "object", "required": ["active"], "properties": {"active": {"type": "boolean"}},
            "additionalProperties": True}}}},
        "400": _BAD, "401": _CLIENT_FAILED, "413": _TOO_LARGE,
    }},
    "OidcUserinfoGet": _userinfo(post=False),
    "OidcUserinfoPost": _userinfo(post=True),
    "OidcEndSessionGet": _end_session(get=True),
    "OidcEndSessionPost": _end_session(get=False),
    "OidcEndSessionConfirm": {"replaceResponses": True, "requestBody": _form(_fields(
        ("xsrf",), xsrf="The token of the confirmation page.", logout="`yes` to end the session.")),
        "responses": {
            "303": {"description": "Signed out (or not): on to the client or the success page.",
                    "headers": {"location": {"schema": {"type": "string"}}}},
            "400": _BAD, "413": _TOO_LARGE,
        }},
    "OidcEndSessionSuccess": {"replaceResponses": True, "responses": {
        "200": {"description": "Signed out.", **_HTML}}},
}
