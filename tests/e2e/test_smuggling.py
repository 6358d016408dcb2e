"""The reported takeover through the public port (issue 10), against the whole stack.

`POST /oidc/token` with `Connection: content-length` and a body that is itself a request: the
old gateway dropped the Content-Length, identity read the body as a second request on the pooled
connection, and its answer (every application with its secret) went to the attacker or to the
next caller. Here the body must reach identity as a body, and nothing hidden in it is served.
"""

from __future__ import annotations

import asyncio
import uuid

import h11
import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-smuggling-admin"}


def _answers(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of every answer on a connection's output, parsed by h11."""
    connection = h11.Connection(h11.CLIENT)
    connection.receive_data(data)
    connection.receive_data(b"")
    answers = []
    while connection.trailing_data[0]:
        connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        connection.send(h11.EndOfMessage())
        head = connection.next_event()
        assert isinstance(head, h11.Response), head
        body = b""
        while not isinstance(event := connection.next_event(), h11.EndOfMessage):
            body += event.data
        answers.append((head.status_code, body))
        if connection.their_state is not h11.DONE:
            break
        connection.start_next_cycle()
    assert connection.trailing_data[0] == b""
    return answers


async def _raw(port: int, raw: bytes) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw + b"GET /oidc/.well-known/openid-configuration HTTP/1.1\r\nHost: gateway\r\n"
                           b"Connection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), 60)
    finally:
        writer.close()
    return _answers(data)


def _smuggle(hidden: bytes) -> bytes:
    return (b"POST /oidc/token HTTP/1.1\r\nHost: gateway\r\nConnection: content-length\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(hidden)) + hidden


async def test_a_request_hidden_in_a_token_request_is_never_served(stack):
    port = int(stack.url.rsplit(":", 1)[1])
    marker = uuid.uuid4().hex[:12]
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, headers=ADMIN) as admin:
        created = await admin.post("/api/applications", json={
            "name": f"smuggling target {marker}", "type": "MachineToMachine"})
        assert created.status_code == 200
        secret = created.json()["secret"]

        list_applications = (b"GET /api/applications?page_size=100 HTTP/1.1\r\nHost: identity\r\n"
                             b"X-Tessera-Caller-Type: user\r\nX-Tessera-Caller-Id: attacker\r\n\r\n")
        user = b'{"username": "smuggled_%s"}' % marker.encode()
        create_user = (b"POST /api/users HTTP/1.1\r\nHost: identity\r\nX-Tessera-Caller-Type: user\r\n"
                       b"X-Tessera-Caller-Id: attacker\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(user), user))

        async def victim(i: int) -> list[str]:
            wrong = []
            async with httpx.AsyncClient(base_url=stack.url, timeout=30, headers=ADMIN) as http:
                for _ in range(10):
                    response = await http.get(f"/api/applications/{created.json()['id']}")
                    if response.status_code != 200 or response.json().get("id") != created.json()["id"]:
                        wrong.append(response.text[:200])
            return wrong

        victims = [asyncio.create_task(victim(i)) for i in range(8)]
        for hidden in (list_applications, create_user) * 3:
            answers = await _raw(port, _smuggle(hidden))
            # The token request (no client authentication in that body: 401) and the sentinel,
            # nothing else.
            assert [status for status, _ in answers] == [401, 200], answers
            assert all(secret.encode() not in body for _, body in answers)
        assert [wrong for wrong in await asyncio.gather(*victims) if wrong] == []

        users = await admin.get("/api/users", params={"search": f"%smuggled_{marker}%"})
        assert users.status_code == 200 and users.json() == []
