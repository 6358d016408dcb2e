"""SendGrid (`sendgrid-email-service`): POST /v3/mail/send with a Bearer API key."""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_connectors.factories.base import (
    Factory,
    Message,
    Runtime,
    call_provider,
    fill,
    find_template,
    load_metadata,
    require_usage_types,
)


class SendGridTemplate(msgspec.Struct, rename="camel"):
    usage_type: str
    type: Literal["text/plain", "text/html"]
    subject: str
    content: str


class SendGridConfig(msgspec.Struct, rename="camel"):
    api_key: str
    from_email: str
    templates: list[SendGridTemplate]
    from_name: str | None = None

    def __post_init__(self) -> None:
        require_usage_types(self.templates)


async def send_message(rt: Runtime, config: SendGridConfig, message: Message) -> None:
    template = find_template(config.templates, message.type)
    sender = {"email": config.from_email, "name": config.from_name} if config.from_name else {"email": config.from_email}
    body = {
        "personalizations": [{"to": [{"email": message.to}]}],
        "from": sender,
        "subject": template.subject,
        "content": [{"type": template.type, "value": fill(template.content, message.payload, loose=False)}],
    }
    response = await call_provider(rt, "POST", rt.settings.sendgrid_endpoint, json=body,
                                   headers={"Authorization": "Bearer " + config.api_key})


def build() -> Factory:
    return Factory("Email", load_metadata("sendgrid-email"), SendGridConfig, send_message=send_message)
