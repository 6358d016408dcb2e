"""Twilio (`twilio-short-message-service`): POST Accounts/{sid}/Messages.json, form-encoded,
HTTP Basic with the account SID and auth token."""

from __future__ import annotations

from urllib.parse import quote

import httpx
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


class TwilioTemplate(msgspec.Struct, rename="camel"):
    usage_type: str
    content: str


class TwilioConfig(msgspec.Struct):
    accountSID: str  # noqa: N815 (Logto's key)
    authToken: str  # noqa: N815
    fromMessagingServiceSID: str  # noqa: N815
    templates: list[TwilioTemplate]

    def __post_init__(self) -> None:
        require_usage_types(self.templates)


async def send_message(rt: Runtime, config: TwilioConfig, message: Message) -> None:
    template = find_template(config.templates, message.type, word="Cannot find template for type")
    url = rt.settings.twilio_endpoint.replace("{{accountSID}}", quote(config.accountSID, safe=""))
    form = {"To": message.to, "MessagingServiceSid": config.fromMessagingServiceSID,
            "Body": fill(template.content, message.payload, loose=False)}
    response = await call_provider(rt, "POST", url, data=form,
                                   auth=httpx.BasicAuth(config.accountSID, config.authToken))


def build() -> Factory:
    return Factory("Sms", load_metadata("twilio-sms"), TwilioConfig, send_message=send_message)
