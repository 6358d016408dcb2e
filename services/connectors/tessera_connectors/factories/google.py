"""Google (`google-universal`): OpenID Connect by Google, read through its userinfo endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import msgspec

from tessera_connectors.factories.base import (
    AuthorizationRequest,
    ConnectorError,
    Factory,
    Runtime,
    call_provider,
    json_of,
    load_metadata,
)
from tessera_connectors.factories.oauth2 import with_query

DEFAULT_SCOPE = "openid profile email"


class GoogleConfig(msgspec.Struct, rename="camel"):
    client_id: str
    client_secret: str
    scope: str | None = None


async def authorization_uri(rt: Runtime, config: GoogleConfig, request: AuthorizationRequest,
                            session: dict[str, Any] | None) -> str:
    return with_query(rt.settings.google_authorization_endpoint, {
        "client_id": config.client_id, "redirect_uri": request.redirect_uri, "response_type": "code",
        "state": request.state, "scope": config.scope or DEFAULT_SCOPE})


async def user_info(rt: Runtime, config: GoogleConfig, data: dict[str, Any],
                    session: dict[str, Any] | None) -> dict[str, Any]:
    code, redirect_uri = data.get("code"), data.get("redirectUri")
    if not isinstance(code, str) or not isinstance(redirect_uri, str):
        raise ConnectorError("general", {"message": "the callback needs `code` and `redirectUri`"})
    response = await call_provider(rt, "POST", rt.settings.google_token_endpoint, data={
        "code": unquote(code), "client_id": config.client_id, "client_secret": config.client_secret,
        "redirect_uri": redirect_uri, "grant_type": "authorization_code"})
    token = json_of(response)
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        raise ConnectorError("social_auth_code_invalid")
    response = await call_provider(rt, "POST", rt.settings.google_userinfo_endpoint,
                                   headers={"authorization": f"Bearer {token['access_token']}"},
                                   unauthorized="social_invalid_access_token")
    profile = json_of(response)
    if not isinstance(profile, dict) or not isinstance(profile.get("sub"), str):
        raise ConnectorError("invalid_response", {"message": "the Google profile has no `sub`"})
    info: dict[str, Any] = {"id": profile["sub"]}
    if isinstance(profile.get("picture"), str):
        info["avatar"] = profile["picture"]
    if profile.get("email_verified") is True and isinstance(profile.get("email"), str):
        info["email"] = profile["email"]
    if isinstance(profile.get("name"), str):
        info["name"] = profile["name"]
    return info


def build() -> Factory:
    return Factory("Social", load_metadata("google"), GoogleConfig,
                   authorization_uri=authorization_uri, user_info=user_info)
