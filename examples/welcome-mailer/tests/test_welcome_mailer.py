"""The example subscriber against a running stack: users created through the gateway get a
welcome mail from a real SMTP server, a suspension gets a notice, a restart mails nobody twice."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from aiosmtpd.controller import Controller
from faststream.nats import NatsBroker

from tessera_devstack.ports import free_ports
from welcome_mailer import Mailer

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "welcome-mailer-admin"}


class Collect:
    def __init__(self) -> None:
        self.mails: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):
        text = envelope.content.decode()
        subject = next(line[9:] for line in text.splitlines() if line.startswith("Subject: "))
        self.mails.append((envelope.rcpt_tos[0], subject))
        return "250 OK"


@pytest.fixture
def smtp():
    collect = Collect()
    (port,) = free_ports(1)
    controller = Controller(collect, hostname="127.0.0.1", port=port)
    controller.start()
    yield collect, port
    controller.stop()


async def until(check, what: str, tries: int = 400):
    for _ in range(tries):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def running_mailer(stack, port: int, db_path: str):
    broker = NatsBroker(stack.env["NATS_URL"], logger=None)
    mailer = Mailer("127.0.0.1", port, db_path)
    mailer.subscribe(broker, stack.env["TESSERA_NAMESPACE"])
    await broker.start()
    return broker, mailer


async def test_welcome_and_suspension_mails_once_across_a_restart(stack, smtp, tmp_path):
    collect, port = smtp
    email = f"new-{secrets.token_hex(4)}@example.com"
    broker, mailer = await running_mailer(stack, port, str(tmp_path / "mailer.db"))
    async with httpx.AsyncClient(base_url=stack.url, headers=ADMIN, timeout=15) as api:
        user = (await api.post("/api/users", json={"primaryEmail": email, "name": "Ada"})).json()
        await until(lambda: (email, "Welcome!") in collect.mails, "the welcome mail")
        await broker.stop()
        mailer.close()

        # While the mailer is down the user is suspended; after its restart its durable resumes
        # and it mails the notice, and nothing it had applied is mailed again.
        suspended = await api.patch(f"/api/users/{user['id']}/is-suspended", json={"isSuspended": True})
        assert suspended.status_code == 200, suspended.text
        broker, mailer = await running_mailer(stack, port, str(tmp_path / "mailer.db"))
        await until(lambda: (email, "Your account is suspended") in collect.mails, "the suspension notice")
        await asyncio.sleep(0.3)
        await broker.stop()
        mailer.close()
    mine = [mail for mail in collect.mails if mail[0] == email]
    assert mine == [(email, "Welcome!"), (email, "Your account is suspended")]
