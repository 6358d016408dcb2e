"""Per-request (or per-event) context: the request id and the caller.

Context variables follow the asyncio task, so the request id set by the HTTP
middleware is seen by the log processors and stamped on the events the request
causes; a consumer sets them from the envelope it is handling.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

from tessera_events import SYSTEM, Actor

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
actor_var: ContextVar[Actor] = ContextVar("actor", default=SYSTEM)


def new_request_id() -> str:
    return secrets.token_hex(8)


def current_request_id() -> str | None:
    return request_id_var.get()


def current_actor() -> Actor:
    return actor_var.get()
