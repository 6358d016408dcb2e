import asyncio
import os

from faststream import FastStream
from faststream.nats import NatsBroker

from welcome_mailer import Mailer


def main() -> None:
    broker = NatsBroker(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), logger=None)
    mailer = Mailer(os.environ.get("SMTP_HOST", "127.0.0.1"), int(os.environ.get("SMTP_PORT", "25")),
                    os.environ.get("MAILER_DB", "welcome-mailer.db"))
    mailer.subscribe(broker, os.environ.get("TESSERA_NAMESPACE", ""))
    asyncio.run(FastStream(broker).run())


main()
