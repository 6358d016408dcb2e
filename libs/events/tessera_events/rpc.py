"""Request/reply contracts between services (`rpc.<service>.<operation>`, never stored).

An operation names its subject and its msgspec request and reply types; the
service that owns the data serves it, any other service calls it through the kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

Req = TypeVar("Req", bound=msgspec.Struct)
Rep = TypeVar("Rep")


@dataclass(frozen=True)
class RpcOperation(Generic[Req, Rep]):
    service: str
    name: str
    request: type[Req]
    reply: type[Rep]

    @property
    def subject(self) -> str:
        return f"rpc.{self.service}.{self.name}"


class Ping(msgspec.Struct, frozen=True):
    """Every service answers `rpc.<service>.ping` (used to tell 'down' from 'slow')."""


class Pong(msgspec.Struct, frozen=True):
    service: str
    ready: bool


def ping(service: str) -> RpcOperation[Ping, Pong]:
    return RpcOperation(service, "ping", Ping, Pong)
