"""Per-request (or per-event) context: the request id, the caller and the tenant.

Context variables follow the asyncio task, so the request id set by the HTTP
middleware is seen by the log processors and stamped on the events the request
causes; a consumer sets them from the envelope it is handling.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from tessera_events import SYSTEM, Actor

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
actor_var: ContextVar[Actor] = ContextVar("actor", default=SYSTEM)
# The tenant a request arrived for (named by the gateway's assertion, which takes it from the
# endpoint the request reached, never from a client header), an rpc was asked for, or an event
# belongs to. Outside any of these (start-up seeding), the default tenant.
DEFAULT_TENANT = "default"
tenant_var: ContextVar[str] = ContextVar("tenant", default=DEFAULT_TENANT)


def new_request_id() -> str:
    return secrets.token_hex(8)


def current_request_id() -> str | None:
    return request_id_var.get()


def current_actor() -> Actor:
    return actor_var.get()


def current_tenant() -> str:
    return tenant_var.get()


@contextmanager
def tenant_scope(tenant_id: str) -> Iterator[None]:
    """Act for `tenant_id` in this block (start-up seeding, per-tenant background work)."""
    token = tenant_var.set(tenant_id)
    try:
        yield
    finally:
        tenant_var.reset(token)
