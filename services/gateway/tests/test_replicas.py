"""Several replicas of one service (tessera_gateway.replicas) against raw TCP servers: which
replica answers, which requests go on to the next one after a failure, and which never do."""

from __future__ import annotations

import asyncio

import pytest

from tessera_devstack.ports import free_port
from tessera_gateway.replicas import ReplicaSet, upstream_for
from tessera_gateway.settings import GatewaySettings
from tessera_gateway.upstream import UpstreamPool, UpstreamProtocolError, UpstreamUnavailable


class Replica:
    """Reads one request head (and its Content-Length body) per connection; answers with its own
    name, or (`hang_up`) closes without a byte, as a process killed mid-request does."""

    def __init__(self, name: str, *, hang_up: bool = False):
        self.name = name
        self.hang_up = hang_up
        self.requests: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            self.requests.append(head + await reader.readexactly(length))
            if not self.hang_up:
                body = self.name.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "Replica":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def replica_set(*urls: str) -> ReplicaSet:
    return ReplicaSet("identity", [UpstreamPool("identity", url) for url in urls], down_seconds=30.0)


async def send(replicas: ReplicaSet, method: bytes = b"GET", body: bytes = b"") -> bytes:
    # As the proxy calls it: Host is the first replica's, resending allowed for idempotent methods.
    response = await replicas.request(method, b"/api/users", [(b"host", replicas.host_header)], body,
                                      retry_on_stale=method in (b"GET", b"HEAD", b"OPTIONS"))
    try:
        return b"".join([chunk async for chunk in response.chunks()])
    finally:
        response.close()


async def test_requests_take_turns_and_each_carries_its_replicas_host() -> None:
    async with Replica("a") as a, Replica("b") as b:
        replicas = replica_set(a.url, b.url)
        assert [await send(replicas) for _ in range(4)] == [b"a", b"b", b"a", b"b"]
        assert all(f"host: {a.url.removeprefix('http://')}".encode() in r for r in a.requests)
        assert all(f"host: {b.url.removeprefix('http://')}".encode() in r for r in b.requests)


async def test_a_replica_refusing_connections_is_skipped_for_any_method_and_marked_down() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with Replica("b") as b:
        replicas = replica_set(down, b.url)
        # Nothing reached the dead replica, so even a POST may go to the other one.
        assert await send(replicas, b"POST", b'{"name": "x"}') == b"b"
        assert replicas.is_down(0) and not replicas.is_down(1)
        assert [await send(replicas, method) for method in (b"GET", b"PATCH", b"DELETE")] == [b"b"] * 3
        assert [r.split(b" ")[0] for r in b.requests] == [b"POST", b"GET", b"PATCH", b"DELETE"]


async def test_an_idempotent_request_the_replica_hung_up_on_goes_to_the_next() -> None:
    async with Replica("dying", hang_up=True) as dying, Replica("b") as b:
        replicas = replica_set(dying.url, b.url)
        assert await send(replicas, b"GET") == b"b"
        assert len(dying.requests) == 1 and len(b.requests) == 1


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"PATCH", b"DELETE"])
async def test_a_write_the_replica_may_have_received_is_never_sent_again(method: bytes) -> None:
    async with Replica("dying", hang_up=True) as dying, Replica("b") as b:
        replicas = replica_set(dying.url, b.url)
        with pytest.raises(UpstreamProtocolError) as failure:
            await send(replicas, method, b'{"name": "x"}')
        assert failure.value.status == 503  # closed without a byte: the service's outage
        assert len(dying.requests) == 1 and b.requests == []


async def test_every_replica_down_is_a_503() -> None:
    replicas = replica_set(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    for _ in range(2):  # marked down, and still tried (there is nothing better)
        with pytest.raises(UpstreamUnavailable):
            await send(replicas)
    assert replicas.is_down(0) and replicas.is_down(1)


async def test_a_replica_marked_down_is_tried_last_until_its_time_is_up() -> None:
    async with Replica("a") as a, Replica("b") as b:
        replicas = replica_set(a.url, b.url)
        replicas._down_until[0] = float("inf")
        assert [await send(replicas) for _ in range(3)] == [b"b"] * 3
        replicas._down_until[0] = 0.0
        assert sorted([await send(replicas) for _ in range(2)]) == [b"a", b"b"]


def test_comma_separated_urls_are_replicas_and_one_url_stays_a_plain_pool() -> None:
    settings = GatewaySettings(identity_url="http://10.0.0.1:3101/, http://10.0.0.2:3101",
                               rbac_url="http://10.0.0.3:3102", internal_key="k")
    assert settings.upstream_replicas == {"identity": ["http://10.0.0.1:3101", "http://10.0.0.2:3101"],
                                          "rbac": ["http://10.0.0.3:3102"]}
    assert settings.upstream_urls == {"identity": "http://10.0.0.1:3101", "rbac": "http://10.0.0.3:3102"}
    assert settings.effective_jwks_url == "http://10.0.0.1:3101/oidc/jwks"
    assert isinstance(upstream_for("rbac", settings.upstream_replicas["rbac"]), UpstreamPool)
    identity = upstream_for("identity", settings.upstream_replicas["identity"])
    assert isinstance(identity, ReplicaSet) and len(identity.replicas) == 2
