"""Logto's test factories (`packages/connectors/connector-mock-*`), installed only with
TESSERA_MOCK_CONNECTORS=true. The email and SMS ones send nothing: they overwrite
`logto_mock_verification_code_record.txt` in the temp directory with one JSON line
(`{"address"|"phone", "code", "type"}`), which Logto's integration tests read back."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

import msgspec

from tessera_connectors.factories.base import (
    AuthorizationRequest,
    ConnectorError,
    Factory,
    Message,
    Runtime,
    find_template,
    load_metadata,
)

RECORD_FILE = "logto_mock_verification_code_record.txt"


class MockMailTemplate(msgspec.Struct, rename="camel"):
    usage_type: str
    type: Literal["text/plain", "text/html"]
    subject: str
    content: str


class MockMailConfig(msgspec.Struct, rename="camel"):
    api_key: str
    from_email: str
    templates: list[MockMailTemplate]
    from_name: str | None = None


class MockSmsTemplate(msgspec.Struct, rename="camel"):
    usage_type: str
    content: str


class MockSmsConfig(msgspec.Struct):
    accountSID: str  # noqa: N815 (Logto's keys)
    authToken: str  # noqa: N815
    fromMessagingServiceSID: str  # noqa: N815
    templates: list[MockSmsTemplate]


class MockSocialConfig(msgspec.Struct, rename="camel"):
    client_id: str
    client_secret: str


def write_record(directory: str, record: dict[str, Any]) -> None:
    """JSON.stringify(record) + newline, replacing the file at once (a reader never sees half)."""
    target = Path(directory) / RECORD_FILE
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".logto_mock_")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)


def _recorder(address_key: str):
    async def send_message(rt: Runtime, config: Any, message: Message) -> None:
        find_template(config.templates, message.type)
        record: dict[str, Any] = {address_key: message.to}
        if "code" in message.payload:  # JSON.stringify leaves out an undefined code
            record["code"] = message.payload["code"]
        record["type"] = message.type
        write_record(rt.settings.record_dir, record)

    return send_message


async def social_authorization_uri(rt: Runtime, config: Any, request: AuthorizationRequest,
                                   session: dict[str, Any] | None) -> str:
    # Logto builds it by concatenation, unencoded.
    return f"http://mock.social.com/?state={request.state}&redirect_uri={request.redirect_uri}"


async def social_user_info(rt: Runtime, config: Any, data: dict[str, Any],
                           session: dict[str, Any] | None) -> dict[str, Any]:
    code = data.get("code")
    optional = {k: data.get(k) for k in ("userId", "email", "phone")}
    if not isinstance(code, str) or any(v is not None and not isinstance(v, str) for v in optional.values()):
        raise ConnectorError("invalid_response", json.dumps(data, separators=(",", ":")))
    info: dict[str, Any] = {"id": optional["userId"] or f"mock-social-sub-{uuid.uuid4()}"}
    info.update({k: v for k, v in optional.items() if k != "userId" and v is not None})
    return info


def build_all() -> list[Factory]:
    return [
        Factory("Email", load_metadata("mock-email"), MockMailConfig, send_message=_recorder("address")),
        Factory("Sms", load_metadata("mock-sms"), MockSmsConfig, send_message=_recorder("phone")),
        Factory("Social", load_metadata("mock-social"), MockSocialConfig,
                authorization_uri=social_authorization_uri, user_info=social_user_info),
        Factory("Email", load_metadata("mock-email-alternative"), MockMailConfig,
                send_message=_recorder("address")),
    ]

