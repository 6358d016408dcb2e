"""Which events a subscriber has applied: redelivery (after a crash, a restart, a replay) must
not apply an event twice. Keyed by (consumer, event id)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Protocol


class Inbox(Protocol):
    async def seen(self, consumer: str, event_id: str) -> bool: ...

    async def record(self, consumer: str, event_id: str) -> None: ...


class MemoryInbox:
    """For tests and for handlers that are idempotent by themselves."""

    def __init__(self) -> None:
        self._ids: set[tuple[str, str]] = set()

    async def seen(self, consumer: str, event_id: str) -> bool:
        return (consumer, event_id) in self._ids

    async def record(self, consumer: str, event_id: str) -> None:
        self._ids.add((consumer, event_id))


class SqliteInbox:
    """Applied event ids in a SQLite file: survives a restart of the subscriber.

    For an effect in your own database, keep the ids in that database instead (implement
    `Inbox` there, and write the id in the transaction of the effect): then an effect and
    its record commit together, and a crash between the two cannot apply an event twice.
    Its calls run on the event loop's thread (a local file and a primary-key lookup: short).
    """

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS inbox (consumer TEXT NOT NULL, event_id TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (consumer, event_id))")

    async def seen(self, consumer: str, event_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM inbox WHERE consumer = ? AND event_id = ?",
                               (consumer, event_id)).fetchone()
        return row is not None

    async def record(self, consumer: str, event_id: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO inbox (consumer, event_id) VALUES (?, ?)",
                         (consumer, event_id))

    def close(self) -> None:
        self._db.close()
