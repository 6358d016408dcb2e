"""The e-mail code benchmark's own parts: its SMTP server hands each code to whoever waits for
that recipient (the mail composed by the SMTP connector from the bench's config, sent with the
connector's library), refuses a wrong login, and the sign-in experience it sets adds or turns on
e-mail codes without touching the other methods."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import msgspec
import pytest

from tessera_bench.scenarios.email_code import SMTP_USER, Mailbox, _with_email_code, smtp_config, smtp_server
from tessera_connectors.factories.base import Message
from tessera_connectors.factories.smtp import SmtpConfig, compose


def mail(port: int, to: str, code: str) -> EmailMessage:
    """The message the SMTP connector composes from the bench's config."""
    config = msgspec.convert(smtp_config(port, "pw-SECRET"), SmtpConfig)
    return compose(config, Message(to=to, type="SignIn", payload={"code": code}))


async def test_each_code_reaches_the_flow_waiting_for_its_recipient():
    mailbox = Mailbox(b"pw-SECRET")
    async with smtp_server(mailbox) as port:
        ann, bob = mailbox.expect("Ann@bench.example"), mailbox.expect("bob@bench.example")
        for to, code in (("bob@bench.example", "222222"), ("ann@bench.example", "111111")):
            await aiosmtplib.send(mail(port, to, code), hostname="127.0.0.1", port=port,
                                  username=SMTP_USER, password="pw-SECRET", start_tls=False)
        assert (await ann, await bob) == ("111111", "222222")
        assert mailbox.waiting == {} and mailbox.received == 2
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await aiosmtplib.send(mail(port, "cid@bench.example", "333333"), hostname="127.0.0.1",
                                  port=port, username=SMTP_USER, password="wrong", start_tls=False)
        assert mailbox.received == 2


def test_email_codes_are_added_or_turned_on_and_nothing_else_changes():
    username = {"identifier": "username", "password": True, "verificationCode": False, "isPasswordPrimary": True}
    added = _with_email_code({"methods": [username]})
    assert added["methods"] == [username, {"identifier": "email", "password": True, "verificationCode": True,
                                           "isPasswordPrimary": False}]
    email = {"identifier": "email", "password": True, "verificationCode": False, "isPasswordPrimary": True}
    turned_on = _with_email_code({"methods": [email, username]})
    assert turned_on["methods"] == [{**email, "verificationCode": True}, username]
    assert email["verificationCode"] is False  # the caller's copy (put back after the run) is untouched
