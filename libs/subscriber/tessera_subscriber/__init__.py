"""Subscribe to Tessera's events from your own service (see README.md)."""

from tessera_subscriber.inbox import Inbox, MemoryInbox, SqliteInbox
from tessera_subscriber.subscriptions import Delivery, Subscriptions, connect

__all__ = ["connect", "Delivery", "Inbox", "MemoryInbox", "SqliteInbox", "Subscriptions"]
