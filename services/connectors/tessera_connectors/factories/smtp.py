"""SMTP (`simple-mail-transfer-protocol`): Logto's nodemailer options, sent with aiosmtplib.

`secure: true` is TLS from the first byte (port 465); otherwise STARTTLS when the server
offers it, required with `requireTLS`, never with `ignoreTLS`. `tls.ca` (PEM) adds a trust
anchor; `tls.rejectUnauthorized: false` turns certificate checks off (nodemailer's names).
`auth` is a login (`user`, `pass`) or OAuth2 with an `accessToken` (XOAUTH2).
"""

from __future__ import annotations

import functools
import ssl
from email.message import EmailMessage
from typing import Any, Literal

import aiosmtplib
import msgspec

from tessera_connectors.factories.base import (
    ConnectorError,
    Factory,
    Message,
    Runtime,
    fill,
    find_template,
    load_metadata,
    require_usage_types,
)

LOGIN = ("login", "Login", "LOGIN")
OAUTH2 = ("oauth2", "OAuth2", "OAUTH2")


class SmtpAuth(msgspec.Struct, rename="camel"):
    """Logto's `loginAuthGuard | oauth2AuthWithKeyGuard | oauth2AuthWithTokenGuard`."""

    user: str
    pass_: str | None = msgspec.field(default=None, name="pass")
    type: str | None = None
    private_key: str | dict[str, str] | None = None
    service_client: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    expires: float | None = None
    access_url: str | None = None

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in LOGIN + OAUTH2:
            raise ValueError("auth.type should be login or oauth2")
        if self.type in LOGIN and self.pass_ is None:
            raise ValueError("auth.pass is required for login")


class SmtpTemplate(msgspec.Struct, rename="camel"):
    usage_type: str
    content_type: Literal["text/plain", "text/html"]
    subject: str
    content: str


class SmtpConfig(msgspec.Struct, rename="camel"):
    host: str
    port: int
    auth: SmtpAuth
    from_email: str
    templates: list[SmtpTemplate]
    reply_to: str | None = None
    logger: bool | None = None
    debug: bool | None = None
    disable_file_access: bool | None = None
    disable_url_access: bool | None = None
    name: str | None = None
    local_address: str | None = None
    connection_timeout: float = 2 * 60 * 1000  # ms, as nodemailer
    greeting_timeout: float = 30 * 1000
    socket_timeout: float = 10 * 60 * 1000
    dns_timeout: float = 30 * 1000
    secure: bool = False
    tls: dict[str, Any] = {}
    servername: str | None = None
    ignore_tls: bool | None = msgspec.field(default=None, name="ignoreTLS")
    require_tls: bool | None = msgspec.field(default=None, name="requireTLS")

    def __post_init__(self) -> None:
        require_usage_types(self.templates)


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    ca = config.tls.get("ca")
    return _tls_context(ca if isinstance(ca, str) else None, config.tls.get("rejectUnauthorized") is not False)


@functools.lru_cache(maxsize=32)
def _tls_context(ca: str | None, verify: bool) -> ssl.SSLContext:
    """One context per trust setting, shared by every connection (an SSLContext is made for
    that): loading the system's CA bundle costs tens of ms of CPU on the event loop, which per
    message was most of what sending a code cost and held up every other request meanwhile."""
    context = ssl.create_default_context(cadata=ca)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def compose(config: SmtpConfig, message: Message) -> EmailMessage:
    template = find_template(config.templates, message.type)
    try:
        return _compose(config, template, message)
    except ValueError as exc:  # a header (recipient, subject) with a line break: header injection
        raise ConnectorError("invalid_request_parameters", str(exc)) from None


def _compose(config: SmtpConfig, template, message: Message) -> EmailMessage:
    email = EmailMessage()
    email["From"] = config.from_email
    email["To"] = message.to
    if config.reply_to:
        email["Reply-To"] = config.reply_to
    email["Subject"] = fill(template.subject, message.payload)
    body = fill(template.content, message.payload)
    if template.content_type == "text/html":
        email.set_content(body, subtype="html")
    else:
        email.set_content(body)
    return email


async def send_message(rt: Runtime, config: SmtpConfig, message: Message) -> None:
    email = compose(config, message)
    auth = config.auth
    oauth_token = None
    if auth.type in OAUTH2 or (auth.pass_ is None and auth.access_token):
        if not auth.access_token:
            raise ConnectorError("not_implemented", {"message": "SMTP OAuth2 needs an accessToken"})
        token = auth.access_token

        async def oauth_token() -> str:  # noqa: F811 (aiosmtplib asks for a coroutine function)
            return token

    timeout = min(config.connection_timeout / 1000, rt.settings.connector_timeout_seconds)
    client = aiosmtplib.SMTP(
        hostname=config.host, port=config.port, use_tls=config.secure,
        start_tls=False if config.ignore_tls else (True if config.require_tls else None),
        tls_context=tls_context(config), timeout=timeout, local_hostname=config.name,
        username=auth.user if auth.pass_ is not None or oauth_token else None,
        password=auth.pass_, oauth_token_generator=oauth_token,
    )
    try:
        async with client:
            await client.send_message(email)
    except aiosmtplib.SMTPTimeoutError:
        raise ConnectorError("general", {"errorDescription": f"{config.host}:{config.port} did not answer "
                                         f"within {timeout:g} s"}) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        # nodemailer's message, never the credentials: aiosmtplib's texts are the server's replies.
        raise ConnectorError("general", {"errorDescription": f"{config.host}:{config.port}: {exc}"}) from None


def build() -> Factory:
    return Factory("Email", load_metadata("smtp"), SmtpConfig, send_message=send_message)
