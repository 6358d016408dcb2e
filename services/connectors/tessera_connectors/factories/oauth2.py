"""Generic OAuth 2.0 (`oauth2`, standard: many instances, each with its own target).

Authorization code flow; the token endpoint's answer is read as a query string or JSON
(`tokenEndpointResponseType`; a JSON content type is read as JSON either way), then the
userinfo endpoint's answer is mapped to Logto's profile with `profileMap`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
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


class ProfileMap(msgspec.Struct):
    id: str = "id"
    email: str = "email"
    phone: str = "phone"
    name: str = "name"
    avatar: str = "avatar"


class OauthConfig(msgspec.Struct, rename="camel"):
    authorization_endpoint: str
    token_endpoint: str
    user_info_endpoint: str
    client_id: str
    client_secret: str
    response_type: Literal["code"] = "code"
    grant_type: Literal["authorization_code"] = "authorization_code"
    token_endpoint_response_type: Literal["query-string", "json"] = "query-string"
    scope: str | None = None
    profile_map: ProfileMap = msgspec.field(default_factory=ProfileMap)
    custom_config: dict[str, str] | None = None


def snake(key: str) -> str:
    """snakecase-keys: `clientId` -> `client_id`."""
    return "".join("_" + c.lower() if c.isupper() else c for c in key).lstrip("_")


def snaked(values: dict[str, Any]) -> dict[str, Any]:
    return {snake(k): v for k, v in values.items() if v is not None}


def with_query(endpoint: str, parameters: dict[str, str]) -> str:
    return f"{endpoint}?{urlencode(parameters)}"


async def authorization_uri(rt: Runtime, config: OauthConfig, request: AuthorizationRequest,
                            session: dict[str, Any] | None) -> str:
    parameters = snaked({"responseType": config.response_type, "clientId": config.client_id,
                         "scope": config.scope, **(config.custom_config or {})})
    if session is not None:
        session["redirectUri"] = request.redirect_uri
    return with_query(config.authorization_endpoint,
                      {**parameters, "state": request.state, "redirect_uri": request.redirect_uri})


def read_token_response(response: httpx.Response, as_json: bool) -> dict[str, Any]:
    if as_json or response.headers.get("content-type", "").startswith("application/json"):
        body = json_of(response)
    else:
        body = dict(parse_qsl(response.text))
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise ConnectorError("social_auth_code_invalid", {"message": "Can not find `access_token` in token response!"})
    return body


def code_of(data: dict[str, Any]) -> str:
    code = data.get("code")
    if not isinstance(code, str):
        raise ConnectorError("general", data)
    return code


def redirect_uri_of(session: dict[str, Any] | None) -> str:
    if session is None:
        raise ConnectorError("not_implemented", {"message": "Function `getSession()` is not implemented."})
    redirect_uri = session.get("redirectUri")
    if not redirect_uri:
        raise ConnectorError("general", {"message": "Cannot find `redirectUri` from connector session."})
    return redirect_uri


def map_profile(profile: Any, profile_map: ProfileMap) -> dict[str, Any]:
    """Logto's userProfileMapping: provider keys renamed by the map, empty values dropped;
    `id` is required (a number becomes a string), the rest must be strings."""
    if not isinstance(profile, dict):
        raise ConnectorError("invalid_response", {"message": "the userinfo answer is not an object"})
    destination_of = {source: destination for destination, source in msgspec.structs.asdict(profile_map).items()}
    mapped = {destination_of[k]: v for k, v in profile.items() if k in destination_of and v}
    user_id = mapped.get("id")
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int, float)):
        raise ConnectorError("invalid_response", {"message": "the userinfo answer has no usable `id`"})
    mapped["id"] = str(user_id)
    for key in ("email", "phone", "name", "avatar"):
        if key in mapped and not isinstance(mapped[key], str):
            raise ConnectorError("invalid_response", {"message": f"`{key}` in the userinfo answer is not a string"})
    return mapped


async def user_info(rt: Runtime, config: OauthConfig, data: dict[str, Any],
                    session: dict[str, Any] | None) -> dict[str, Any]:
    redirect_uri = redirect_uri_of(session)
    code = code_of(data)
    form = snaked({"grantType": config.grant_type, "clientId": config.client_id,
                   "clientSecret": config.client_secret, **(config.custom_config or {}),
                   "code": code, "redirectUri": redirect_uri})
    token = read_token_response(await call_provider(rt, "POST", config.token_endpoint, data=form),
                                config.token_endpoint_response_type == "json")
    response = await call_provider(rt, "GET", config.user_info_endpoint, headers={
        "authorization": f"{token.get('token_type', 'Bearer')} {token['access_token']}"})
    return map_profile(json_of(response), config.profile_map)


def build() -> Factory:
    return Factory("Social", load_metadata("oauth2"), OauthConfig,
                   authorization_uri=authorization_uri, user_info=user_info)
