"""A welcome mailer: what another team writes to react to Tessera's events.

It keeps the e-mail address of each user it hears of (events about a suspension carry only the
user id), mails a welcome on `identity.user.created` and a notice on `identity.user.suspended`.
Its state and the ids of the events it applied live in one SQLite file, so a restart neither
forgets an address nor mails twice.

    python -m welcome_mailer     # NATS_URL, NATS_USER, NATS_PASSWORD, TESSERA_NAMESPACE,
                                 # SMTP_HOST, SMTP_PORT, MAILER_DB

Its NATS user is a read-only subscriber user, e.g. from
`TESSERA_SUBSCRIBERS="welcome-mailer=identity.user.*" make run` (tessera-subscriber's README).
"""

from __future__ import annotations

import sqlite3
from email.message import EmailMessage

import aiosmtplib
from faststream.nats import NatsBroker

from tessera_events.identity import UserCreated, UserSuspended
from tessera_subscriber import SqliteInbox, Subscriptions

SENDER = "welcome@example.com"


class Mailer:
    def __init__(self, smtp_host: str, smtp_port: int, db_path: str) -> None:
        self.smtp_host, self.smtp_port = smtp_host, smtp_port
        self.inbox = SqliteInbox(db_path)
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS addresses (user_id TEXT PRIMARY KEY, email TEXT NOT NULL)")

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, to, subject
        message.set_content(text)
        await aiosmtplib.send(message, hostname=self.smtp_host, port=self.smtp_port)

    def subscribe(self, broker: NatsBroker, namespace: str = "") -> Subscriptions:
        subscriptions = Subscriptions(broker, "welcome-mailer", namespace=namespace, inbox=self.inbox)

        # One subscription for every user event, not one per type: events of one subscription
        # come in stream order, so a replay cannot see a suspension before the user's creation
        # (whose address the notice needs).
        @subscriptions.on("identity.user.*")
        async def user_event(event) -> None:
            if isinstance(event, UserCreated):
                await self.welcome(event)
            elif isinstance(event, UserSuspended):
                await self.suspended(event)

        return subscriptions

    async def welcome(self, event: UserCreated) -> None:
        if not event.user.primary_email:
            return
        self.db.execute("INSERT OR REPLACE INTO addresses VALUES (?, ?)",
                        (event.user.id, event.user.primary_email))
        await self.send(event.user.primary_email, "Welcome!",
                        f"Hello {event.user.name or event.user.username or 'there'}, welcome aboard.")

    async def suspended(self, event: UserSuspended) -> None:
        row = self.db.execute("SELECT email FROM addresses WHERE user_id = ?", (event.user_id,)).fetchone()
        if row:
            await self.send(row[0], "Your account is suspended", "Contact support to restore it.")

    def close(self) -> None:
        self.inbox.close()
        self.db.close()
