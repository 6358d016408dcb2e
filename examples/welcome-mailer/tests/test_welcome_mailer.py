"""The example subscriber against a running stack: users created through the gateway get a
welcome mail from a real SMTP server, a suspension gets a notice, a restart mails nobody twice."""

from __future__ import annotations

import secrets

import httpx
import nats
import pytest
from aiosmtpd.controller import Controller
from faststream.nats import NatsBroker

from tessera_devstack.polling import until
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


async def consumed_all(stack) -> bool:
    """The mailer's durable has nothing left to deliver and nothing unacked."""
    nc = await nats.connect(stack.env["NATS_URL"])
    try:
        info = await nc.jetstream().consumer_info(
            f"{stack.env['TESSERA_NAMESPACE'].upper()}_IDENTITY", "welcome-mailer-identity_user_any")
    finally:
        await nc.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


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
        # A user it never heard of is created and suspended meanwhile: it learns the address
        # from the creation before it handles the suspension.
        later = f"later-{secrets.token_hex(4)}@example.com"
        other = (await api.post("/api/users", json={"primaryEmail": later})).json()
        suspended = await api.patch(f"/api/users/{other['id']}/is-suspended", json={"isSuspended": True})
        assert suspended.status_code == 200, suspended.text
        broker, mailer = await running_mailer(stack, port, str(tmp_path / "mailer.db"))
        await until(lambda: (later, "Your account is suspended") in collect.mails, "the later user's notice")
        await until(lambda: consumed_all(stack), "every event acked")
        await broker.stop()
        mailer.close()
    assert [mail for mail in collect.mails if mail[0] == email] == [
        (email, "Welcome!"), (email, "Your account is suspended")]
    assert [mail for mail in collect.mails if mail[0] == later] == [
        (later, "Welcome!"), (later, "Your account is suspended")]
