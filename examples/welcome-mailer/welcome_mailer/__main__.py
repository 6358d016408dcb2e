import asyncio
import os

from faststream import FastStream

from tessera_subscriber import connect
from welcome_mailer import Mailer


def main() -> None:
    # The subscriber's own read-only NATS user, and the reply inbox that user may read.
    broker = connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), "welcome-mailer",
                     user=os.environ.get("NATS_USER"), password=os.environ.get("NATS_PASSWORD"),
                     namespace=os.environ.get("TESSERA_NAMESPACE", ""))
    mailer = Mailer(os.environ.get("SMTP_HOST", "127.0.0.1"), int(os.environ.get("SMTP_PORT", "25")),
                    os.environ.get("MAILER_DB", "welcome-mailer.db"))
    mailer.subscribe(broker, os.environ.get("TESSERA_NAMESPACE", ""))
    asyncio.run(FastStream(broker).run())


main()
