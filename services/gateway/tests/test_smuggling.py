"""Request smuggling and desync, raw bytes against a running gateway in front of a real upstream.

Each vector is sent on its own connection, followed by a harmless `Connection: close` request
(the sentinel), and every answer on that connection is read to its end. Whatever the vector,
it is either refused with 400 and the connection closed, or served as exactly one request; a
request hidden in a body never reaches the upstream (the upstream counts the paths it saw),
and no client ever receives an answer meant for another request.

Who refuses what: granian (the front server) already answers 400 itself to some vectors
("refused"); the gateway answers 400 in Logto's format to the ambiguous framing granian lets
through ("400"). Some vectors granian normalises before the gateway sees them: it drops a
Content-Length sent with Transfer-Encoding (and closes the connection after the answer),
merges identical Content-Lengths, accepts bare LF line ends. Those are served as one request
("one"): the gateway frames the upstream request itself, so they cannot reach the upstream
differently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Callable

import h11
import httpx
import pytest

Vector = Callable[[str], bytes]


def _smuggled(marker: str) -> bytes:
    """The request an attacker hides in a body: anonymous, for a Management API resource."""
    return f"GET /api/users/smuggled-{marker} HTTP/1.1\r\nHost: identity\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _post(headers: str, body: bytes, version: str = "1.1") -> bytes:
    return f"POST /oidc/token HTTP/{version}\r\nHost: gateway\r\n{headers}\r\n".encode() + body


def _cl(body: bytes) -> str:
    return f"Content-Length: {len(body)}\r\n"


# name -> (vector, expected outcome: "one", "400" (the gateway's, Logto's format), "refused"
# (granian's own 400) or "closed" (no answer at all)). The reported attack is the first.
VECTORS: dict[str, tuple[Vector, str]] = {
    "connection names content-length": (
        lambda m: _post("Connection: content-length\r\n" + _cl(_smuggled(m)), _smuggled(m)), "one"),
    "connection names content-length, close": (
        lambda m: _post("Connection: Content-Length, keep-alive\r\n" + _cl(_smuggled(m)), _smuggled(m)), "one"),
    "connection names transfer-encoding": (
        lambda m: _post("Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n",
                        _chunk(_smuggled(m)) + b"0\r\n\r\n"), "one"),
    "connection names host": (
        lambda m: b"GET /oidc/plain HTTP/1.1\r\nHost: gateway\r\nConnection: host\r\n\r\n", "one"),
    "CL.TE": (
        lambda m: _post("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (5 + len(_smuggled(m))),
                        b"0\r\n\r\n" + _smuggled(m)), "one"),
    "TE.CL": (
        lambda m: _post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                        _chunk(_smuggled(m)) + b"0\r\n\r\n"), "one"),
    "TE.TE chunked twice": (
        lambda m: _post("Transfer-Encoding: chunked, chunked\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n"), "400"),
    "TE.TE gzip, chunked": (
        lambda m: _post("Transfer-Encoding: gzip, chunked\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n"), "400"),
    "TE.TE two header lines": (
        lambda m: _post("Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
                        _chunk(_smuggled(m)) + b"0\r\n\r\n"), "refused"),
    "TE.TE xchunked": (
        lambda m: _post("Transfer-Encoding: xchunked\r\n" + _cl(_smuggled(m)), _smuggled(m)), "refused"),
    "TE.TE space before colon": (
        lambda m: _post("Transfer-Encoding : chunked\r\n" + _cl(_smuggled(m)), _smuggled(m)), "refused"),
    "TE.TE identity": (
        lambda m: _post("Transfer-Encoding: identity\r\n" + _cl(_smuggled(m)), _smuggled(m)), "refused"),
    "TE.TE obs-fold": (
        lambda m: _post("Transfer-Encoding: x\r\n chunked\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n"), "refused"),
    "TE.TE tab": (
        lambda m: _post("Transfer-Encoding:\tchunked\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n"), "one"),
    "TE.TE upper case": (
        lambda m: _post("Transfer-Encoding: CHUNKED\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n"), "one"),
    "TE on HTTP/1.0": (
        lambda m: _post("Transfer-Encoding: chunked\r\n", _chunk(_smuggled(m)) + b"0\r\n\r\n", "1.0"), "refused"),
    "duplicate Content-Length, same value": (
        lambda m: _post(_cl(_smuggled(m)) * 2, _smuggled(m)), "one"),
    "duplicate Content-Length, other value": (
        lambda m: _post("Content-Length: 0\r\n" + _cl(_smuggled(m)), _smuggled(m)), "refused"),
    "Content-Length list": (
        lambda m: _post("Content-Length: %d, %d\r\n" % ((len(_smuggled(m)),) * 2), _smuggled(m)), "refused"),
    "Content-Length with a sign": (
        lambda m: _post("Content-Length: +%d\r\n" % len(_smuggled(m)), _smuggled(m)), "refused"),
    "obs-fold": (
        lambda m: _post("X-Folded: a\r\n b\r\n" + _cl(_smuggled(m)), _smuggled(m)), "refused"),
    "bare LF": (
        lambda m: _post(_cl(_smuggled(m)), _smuggled(m)).replace(b"\r\n", b"\n", 2), "one"),
    "oversized chunk size": (
        lambda m: _post("Transfer-Encoding: chunked\r\n",
                        b"FFFFFFFFFFFFFFFFF1\r\n" + _smuggled(m) + b"\r\n0\r\n\r\n"), "400"),
    "chunk size just over 64 bits": (
        lambda m: _post("Transfer-Encoding: chunked\r\n",
                        b"10000000000000001\r\n" + _smuggled(m) + b"\r\n0\r\n\r\n"), "400"),
    "two Host headers": (
        lambda m: b"GET /oidc/plain HTTP/1.1\r\nHost: gateway\r\nHost: identity\r\n\r\n", "400"),
    # Cleartext HTTP/2 with prior knowledge: a second protocol (and framing) at the door, which
    # granian speaks unless told HTTP/1.1 only (tessera_kit.serve). It closes the connection.
    "HTTP/2 prior knowledge": (lambda m: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _smuggled(m), "closed"),
    "pipelined": (
        lambda m: b"GET /oidc/first HTTP/1.1\r\nHost: gateway\r\n\r\n"
                  b"GET /oidc/second HTTP/1.1\r\nHost: gateway\r\n\r\n", "one"),
}


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def parse_answers(data: bytes) -> tuple[list[Answer], bytes]:
    """Every HTTP/1.1 answer in `data` (a connection's whole output, read to its close), parsed
    by h11; and what followed the last one (must be nothing)."""
    connection = h11.Connection(h11.CLIENT)
    connection.receive_data(data)
    connection.receive_data(b"")
    answers: list[Answer] = []
    while connection.trailing_data[0]:
        connection.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        connection.send(h11.EndOfMessage())
        head = connection.next_event()
        assert isinstance(head, h11.Response), head
        body = b""
        while not isinstance(event := connection.next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data), event
            body += event.data
        answers.append(Answer(head.status_code, dict(head.headers), body))
        if connection.their_state is not h11.DONE:
            break  # the server said close: nothing may follow
        connection.start_next_cycle()
    return answers, connection.trailing_data[0]


SENTINEL = b"GET /oidc/sentinel HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"


async def exchange(port: int, raw: bytes) -> tuple[list[Answer], bytes]:
    """Send `raw` then the sentinel on one connection; read until the gateway closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw + SENTINEL)
        await writer.drain()
        # A safety net only: the sentinel asks for the close.
        data = await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()
    return parse_answers(data)


async def seen(upstream_url: str, marker: str) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{upstream_url}/test/seen", params={"marker": marker})).json()["seen"]


def check_vector(name: str, expected: str, marker: str, answers: list[Answer], trailing: bytes) -> None:
    assert trailing == b"", (name, trailing)
    if expected == "closed":
        assert answers == [], (name, answers)
        return
    assert answers, f"{name}: no answer at all"
    first = answers[0]
    paths = [a.json()["path"] for a in answers if a.status == 200]
    assert not any("smuggled" in path for path in paths), (name, paths)
    if expected in ("400", "refused"):
        assert first.status == 400, (name, first)
        assert len(answers) == 1, f"{name}: the connection stayed open after the 400"
        if expected == "400":
            body = first.json()
            assert body["code"] == "request.invalid_input", body
            assert first.headers[b"connection"] == b"close"
        return
    assert first.status == 200, (name, first)
    if name == "pipelined":
        assert paths[:2] == ["/oidc/first", "/oidc/second"], paths
        rest = paths[2:]
    else:
        rest = paths[1:]
        echo = first.json()
        if echo["method"] == "POST":
            # The body as the client framed it reached the service whole, as a body (CL.TE:
            # granian reads the chunked framing, an empty body, and closes the connection).
            hidden = b"" if name == "CL.TE" else _smuggled(marker)
            assert echo["bodySha256"] == hashlib.sha256(hidden).hexdigest(), (name, echo)
        else:
            assert echo["headers"][[k for k, _ in echo["headers"]].index("host")][1] != "gateway"
    # Served as exactly one request: what follows is only the sentinel (unless the front
    # server closed the connection after an answer it did not trust).
    assert rest in ([], ["/oidc/sentinel"]), (name, paths)


@pytest.mark.parametrize("name", list(VECTORS))
async def test_vector(gateway, fake_identity, name: str) -> None:
    vector, expected = VECTORS[name]
    marker = uuid.uuid4().hex
    raw = vector(marker)
    answers, trailing = await exchange(gateway.port, raw)
    check_vector(name, expected, marker, answers, trailing)
    assert await seen(fake_identity.url, marker) == 0, f"{name}: the hidden request reached the service"


async def test_a_request_after_an_upstream_timeout_gets_its_own_answer(gateway) -> None:
    """The gateway gives up on a slow answer (504); that answer, arriving later on the same
    upstream connection, must not become the next request's."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        slow = await http.get("/oidc/slow", params={"seconds": 3})  # the read timeout is 2 s
        assert slow.status_code == 504
        for i in range(5):
            response = await http.get(f"/oidc/after-timeout-{i}")
            assert response.status_code == 200
            assert response.json()["path"] == f"/oidc/after-timeout-{i}"


async def test_concurrent_clients_see_only_their_own_answers_under_attack(gateway, fake_identity, auth) -> None:
    """Many clients, each on its own keep-alive connection asking for its own resources, while
    an attacker sends every vector again and again on the same gateway."""
    marker = uuid.uuid4().hex
    attacking = True

    async def attacker() -> tuple[int, list[str]]:
        rounds, failures = 0, []
        while attacking:
            for name, (vector, expected) in VECTORS.items():
                answers, trailing = await exchange(gateway.port, vector(marker))
                try:
                    check_vector(name, expected, marker, answers, trailing)
                except AssertionError as error:
                    failures.append(f"{name}: {error}")
            rounds += 1
        return rounds, failures

    async def victim(i: int) -> list[tuple[str, str]]:
        wrong = []
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            for j in range(25):
                path = f"/api/users/victim-{i}-{j}"
                response = await http.get(path, headers=auth)
                got = response.json().get("path") if response.status_code == 200 else str(response.status_code)
                if got != path:
                    wrong.append((path, got))
        return wrong

    attackers = [asyncio.create_task(attacker()) for _ in range(3)]
    try:
        results = await asyncio.gather(*(victim(i) for i in range(20)))
    finally:
        attacking = False
        attacks = await asyncio.gather(*attackers)
    assert [wrong for wrong in results if wrong] == []
    assert [failures for _, failures in attacks if failures] == []
    assert min(rounds for rounds, _ in attacks) >= 1
    assert await seen(fake_identity.url, marker) == 0
