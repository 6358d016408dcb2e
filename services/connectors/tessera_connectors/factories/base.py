"""What every connector factory is made of, and the pieces they share.

A factory is a module that builds one `Factory`: its type, its metadata (Logto's, from
`assets/<name>/metadata.json`, with logos inlined as data URIs and the readme and config
template as text, as Logto's loader does), its config schema as a msgspec Struct, and the
functions of its kind (`send_message` for Email and Sms, `authorization_uri` and `user_info`
for Social). Functions raise `ConnectorError`s; `to_request_error` maps them as Logto §7.4.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal
from urllib.parse import urlsplit

import httpx
import msgspec

from tessera_connectors.settings import ConnectorsSettings
from tessera_kit.errors import RequestError

ConnectorType = Literal["Email", "Sms", "Social"]
ASSETS = Path(__file__).parent / "assets"
# Logto's template usage types; `Test` is deprecated there but still a valid template key.
USAGE_TYPES = ("SignIn", "Register", "ForgotPassword", "Generic", "Test")
REQUIRED_USAGE_TYPES = ("Register", "SignIn", "ForgotPassword", "Generic")


class ConnectorError(Exception):
    """Logto's `ConnectorError(code, data)`: a string `data` becomes `{"message": data}`."""

    def __init__(self, code: str, data: Any = None) -> None:
        self.code = code
        self.data = {"message": data} if isinstance(data, str) else data
        super().__init__(f"connector.{code}")


_STATUS = {
    "social_auth_code_invalid": 401, "social_invalid_access_token": 401,
    "social_invalid_id_token": 401, "authorization_failed": 401,
    "not_implemented": 501, "rate_limit_exceeded": 429,
}


def to_request_error(error: ConnectorError) -> RequestError:
    """Logto's koa-connector-error-handler: `connector.<code>`, the connector's data, 400
    unless the code says otherwise; `general` interpolates `errorDescription`."""
    data = error.data
    description = None
    if isinstance(data, dict):
        description = data.get("errorDescription") or data.get("message")
    return RequestError(f"connector.{error.code}", _STATUS.get(error.code, 400), data=data,
                        errorDescription=description or "unknown error", method=_method(data))


def _method(data: Any) -> str:
    return str(data.get("message", "")) if isinstance(data, dict) else ""


# ---------------------------------------------------------------- config validation

_AT = re.compile(r" - at `\$(.*)`$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def validation_issue(error: msgspec.ValidationError) -> dict[str, Any]:
    """One zod-shaped issue from msgspec's message ("Expected `int`, got `str` - at `$.port`")."""
    text = str(error)
    path: list[str | int] = []
    match = _AT.search(text)
    if match:
        text = text[: match.start()]
        for key, index in _SEGMENT.findall(match[1]):
            path.append(int(index) if index else key)
    code = "invalid_type" if text.startswith(("Expected", "Object missing")) else "custom"
    return {"code": code, "message": text.replace("`", ""), "path": path}


def parse_config(config_type: type[msgspec.Struct], config: Any) -> Any:
    """The factory's configGuard: 400 `connector.invalid_config` with a ZodError-shaped data."""
    if not isinstance(config, dict):
        raise ConnectorError("invalid_config", {"issues": [
            {"code": "invalid_type", "message": "Expected object", "path": []}], "name": "ZodError"})
    try:
        return msgspec.convert(config, config_type)
    except msgspec.ValidationError as exc:
        raise ConnectorError("invalid_config", {"issues": [validation_issue(exc)], "name": "ZodError"}) from None


def require_usage_types(templates: list[Any]) -> None:
    """The refinement Logto's SMTP, SendGrid and Twilio guards put on `templates`."""
    present = {t.usage_type for t in templates}
    missing = [t for t in REQUIRED_USAGE_TYPES if t not in present]
    if missing:
        raise ValueError(f"Template with UsageType ({', '.join(missing)}) should be provided!")


def find_template(templates: list[Any], usage_type: str, *, word: str = "Template not found for type") -> Any:
    for template in templates:
        if template.usage_type == usage_type:
            return template
    raise ConnectorError("template_not_found", f"{word}: {usage_type}")


_CODE = re.compile(r"{{\s*code\s*}}")


def fill(text: str, payload: dict[str, str], *, loose: bool = True) -> str:
    """Put the code in a template (`{{code}}`; SMTP also accepts `{{ code }}`)."""
    code = payload.get("code")
    if not isinstance(code, str):
        return text
    return _CODE.sub(lambda _: code, text) if loose else text.replace("{{code}}", code)


# ---------------------------------------------------------------- runtime and HTTP


@dataclass
class Runtime:
    """What a connector may use: settings and one HTTP client (connection reuse)."""

    settings: ConnectorsSettings
    http: httpx.AsyncClient


# Bytes of a provider's answer (decoded) read at most: far more than any token, profile or
# JWKS, and a bound on the memory and the JSON parse an endpoint an admin configured can cost.
PROVIDER_ANSWER_CAP = 1 << 20


async def call_provider(rt: Runtime, method: str, url: str, *, unauthorized: str | None = None,
                        **kwargs: Any) -> httpx.Response:
    """One request to a provider, its answer read whole (up to PROVIDER_ANSWER_CAP) within the
    timeout; only a 2xx or 3xx answer is returned. No answer in time, no connection, or a 5xx: a
    `connector.general` error that says which host and what happened (never the body sent); a
    4xx: Logto's `General` with the body, or the code `unauthorized` names for a 401; a larger
    answer: `invalid_response`."""
    host = urlsplit(url).netloc or url
    timeout = rt.settings.connector_timeout_seconds
    try:
        async with asyncio.timeout(timeout), rt.http.stream(method, url, timeout=timeout, **kwargs) as streamed:
            body = bytearray()
            async for chunk in streamed.aiter_bytes():
                body += chunk
                if len(body) > PROVIDER_ANSWER_CAP:
                    raise ConnectorError("invalid_response", {
                        "errorDescription": f"{host} answered more than {PROVIDER_ANSWER_CAP} bytes"})
    except (httpx.TimeoutException, TimeoutError):
        raise ConnectorError("general", {"errorDescription": f"{host} did not answer within "
                                         f"{rt.settings.connector_timeout_seconds:g} s"}) from None
    except httpx.HTTPError as exc:
        raise ConnectorError("general", {"errorDescription": f"{host} could not be reached "
                                         f"({type(exc).__name__})"}) from None
    # The body is decoded already: the encoding and length headers no longer describe it.
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k not in ("content-encoding", "content-length")]
    response = httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=streamed.request)
    if response.status_code >= 500:
        raise ConnectorError("general", {"errorDescription": f"{host} answered {response.status_code}",
                                         "message": response.text[:500]})
    if response.status_code == 401 and unauthorized:
        raise ConnectorError(unauthorized)
    if response.status_code >= 400:
        raise provider_refused(response)
    return response


def provider_refused(response: httpx.Response) -> ConnectorError:
    """A 4xx from a provider: Logto's `ConnectorError(General, rawBody)`."""
    host = response.request.url.host
    return ConnectorError("general", {"errorDescription": f"{host} answered {response.status_code}",
                                      "message": response.text[:500]})


def json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ConnectorError("invalid_response", response.text[:500]) from None


# ---------------------------------------------------------------- the factory


@dataclass(frozen=True)
class Message:
    to: str
    type: str  # the template's usage type
    payload: dict[str, str]


@dataclass(frozen=True)
class AuthorizationRequest:
    state: str
    redirect_uri: str
    connector_id: str
    connector_factory_id: str
    jti: str = ""
    user_agent: str | None = None


SendMessage = Callable[[Runtime, Any, Message], Awaitable[None]]
# session: what the connector may keep for the callback (`setSession`); None where the
# caller has none to offer (the Management API's authorization-uri route).
AuthorizationUri = Callable[[Runtime, Any, AuthorizationRequest, "dict[str, Any] | None"], Awaitable[str]]
UserInfo = Callable[[Runtime, Any, dict[str, Any], "dict[str, Any] | None"], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Factory:
    type: ConnectorType
    metadata: dict[str, Any]
    config_type: type[msgspec.Struct]
    send_message: SendMessage | None = None
    authorization_uri: AuthorizationUri | None = None
    user_info: UserInfo | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.metadata["id"]

    @property
    def target(self) -> str:
        return self.metadata["target"]

    @property
    def platform(self) -> str | None:
        return self.metadata.get("platform")

    @property
    def is_standard(self) -> bool:
        return self.metadata.get("isStandard") is True

    def parse_config(self, config: Any) -> Any:
        return parse_config(self.config_type, config)

    def response(self) -> dict[str, Any]:
        """GET /connector-factories: `{type, ...metadata, isDemo}`."""
        return {"type": self.type, **self.metadata, "isDemo": False}


def load_metadata(folder: str) -> dict[str, Any]:
    """Logto's parseMetadata: logos as data URIs, readme and config template as text."""
    base = ASSETS / folder
    metadata = json.loads((base / "metadata.json").read_text())

    def svg(relative: str | None) -> str | None:
        if not relative or relative.startswith("http") or not (base / relative).is_file():
            return relative
        return "data:image/svg+xml;base64," + base64.b64encode((base / relative).read_bytes()).decode()

    def text(relative: str | None) -> str | None:
        if not relative or not (base / relative).is_file():
            return relative
        return (base / relative).read_text()

    metadata["logo"] = svg(metadata.get("logo"))
    metadata["logoDark"] = svg(metadata.get("logoDark"))
    metadata["readme"] = text(metadata.get("readme"))
    if metadata.get("configTemplate"):
        metadata["configTemplate"] = text(metadata["configTemplate"].replace("./docs/", "./"))
    return metadata
