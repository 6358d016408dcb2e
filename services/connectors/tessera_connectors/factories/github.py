"""GitHub (`github-universal`): OAuth app, token as a query string, `GET /user`."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

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

DEFAULT_SCOPE = "read:user"


class GithubConfig(msgspec.Struct, rename="camel"):
    client_id: str
    client_secret: str
    scope: str | None = None


async def authorization_uri(rt: Runtime, config: GithubConfig, request: AuthorizationRequest,
                            session: dict[str, Any] | None) -> str:
    return with_query(rt.settings.github_authorization_endpoint, {
        "client_id": config.client_id, "redirect_uri": request.redirect_uri, "state": request.state,
        "scope": config.scope or DEFAULT_SCOPE})


def callback_code(data: dict[str, Any]) -> str:
    if isinstance(data.get("code"), str):
        return data["code"]
    if data.get("error") == "access_denied":
        raise ConnectorError("authorization_failed", data.get("error_description"))
    if isinstance(data.get("error"), str):
        raise ConnectorError("general", {"error": data["error"], "errorDescription": data.get("error_description"),
                                         "error_uri": data.get("error_uri")})
    raise ConnectorError("general", {"message": "the callback carries no `code`"})


async def user_info(rt: Runtime, config: GithubConfig, data: dict[str, Any],
                    session: dict[str, Any] | None) -> dict[str, Any]:
    code = callback_code(data)
    response = await call_provider(rt, "POST", rt.settings.github_token_endpoint, json={
        "client_id": config.client_id, "client_secret": config.client_secret, "code": code})
    token = dict(parse_qsl(response.text))
    if not token.get("access_token"):
        raise ConnectorError("social_auth_code_invalid")
    response = await call_provider(rt, "GET", rt.settings.github_userinfo_endpoint,
                                   headers={"authorization": f"token {token['access_token']}"},
                                   unauthorized="social_invalid_access_token")
    profile = json_of(response)
    if not isinstance(profile, dict) or isinstance(profile.get("id"), bool) or not isinstance(profile.get("id"), int):
        raise ConnectorError("invalid_response", {"message": "the GitHub user has no numeric `id`"})
    info: dict[str, Any] = {"id": str(profile["id"])}
    for key, source in (("avatar", "avatar_url"), ("email", "email"), ("name", "name")):
        if isinstance(profile.get(source), str) and profile[source]:
            info[key] = profile[source]
    return info


def build() -> Factory:
    return Factory("Social", load_metadata("github"), GithubConfig,
                   authorization_uri=authorization_uri, user_info=user_info)
