"""An answer decided before the request body was read waits for the rest of the body, so the
server keeps the connection and the gateway may reuse it; past the bound it says it closes."""

import asyncio

import pytest

from tessera_kit import http
from tessera_kit.http import answer_after_the_body


class Connection:
    """A server's side of one request: its body in chunks, then (as granian does) a receive
    that waits until the client leaves."""

    def __init__(self, *chunks: bytes, stalls: bool = False):
        self.messages = [{"type": "http.request", "body": c, "more_body": stalls or i < len(chunks) - 1}
                         for i, c in enumerate(chunks)]
        self.read = 0
        self.waited_past_the_end = False
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.messages:
            self.read += 1
            return self.messages.pop(0)
        self.waited_past_the_end = True
        await asyncio.Event().wait()  # the client stays

    async def send(self, message: dict) -> None:
        self.sent.append({**message, "read_before": self.read})

    @property
    def start(self) -> dict:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        assert len(starts) == 1
        return starts[0]


def answering_after(reads: int, status: int = 400):
    """An app that reads `reads` body messages, then answers."""
    async def app(scope, receive, send):
        for _ in range(reads):
            await receive()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"no!"})

    return app


def scope(*headers: tuple[bytes, bytes], method: str = "POST") -> dict:
    return {"type": "http", "method": method, "path": "/api/x", "raw_path": b"/api/x", "query_string": b"",
            "headers": [(b"content-type", b"application/json"), *headers]}


LENGTH_30 = (b"content-length", b"30")


@pytest.mark.parametrize("status", [400, 401, 413, 503, 200])
async def test_an_early_answer_waits_until_the_rest_of_the_body_is_read(status):
    connection = Connection(b"a" * 10, b"b" * 10, b"c" * 10)
    await answer_after_the_body(answering_after(0, status))(scope(LENGTH_30), connection.receive, connection.send)
    assert connection.start["status"] == status
    assert connection.start["read_before"] == 3  # the whole body, before the answer
    assert (b"connection", b"close") not in connection.start["headers"]  # the connection stays usable
    assert not connection.waited_past_the_end


async def test_a_chunked_body_is_read_too():
    connection = Connection(b"a" * 10, b"b" * 10)
    await answer_after_the_body(answering_after(1))(scope((b"transfer-encoding", b"chunked")),
                                                    connection.receive, connection.send)
    assert connection.start["read_before"] == 2


async def test_an_answer_after_the_whole_body_goes_out_at_once():
    """Nothing is left to read: no wait for a message that only comes when the client leaves."""
    connection = Connection(b"a" * 10, b"b" * 10)
    await answer_after_the_body(answering_after(2))(scope((b"content-length", b"20")),
                                                    connection.receive, connection.send)
    assert connection.start["read_before"] == 2
    assert not connection.waited_past_the_end


@pytest.mark.parametrize("headers,method", [((), "GET"), (((b"content-length", b"0"),), "POST")])
async def test_a_request_without_a_body_is_not_read(headers, method):
    connection = Connection(b"")
    await answer_after_the_body(answering_after(0))(scope(*headers, method=method), connection.receive, connection.send)
    assert connection.read == 0 and connection.start["status"] == 400


async def test_past_the_limit_the_answer_says_the_connection_closes(monkeypatch):
    monkeypatch.setattr(http, "DRAIN_LIMIT", 25)
    connection = Connection(*[b"x" * 10] * 10)
    await answer_after_the_body(answering_after(0, 413))(scope((b"content-length", b"100")),
                                                         connection.receive, connection.send)
    assert connection.start["read_before"] == 3  # 30 bytes read: over the limit, no more
    assert (b"connection", b"close") in connection.start["headers"]


async def test_a_client_too_slow_gets_the_answer_with_connection_close(monkeypatch):
    monkeypatch.setattr(http, "DRAIN_SECONDS", 0.05)
    connection = Connection(b"x" * 10, stalls=True)  # declares 30, sends 10, then nothing
    await answer_after_the_body(answering_after(0))(scope(LENGTH_30), connection.receive, connection.send)
    assert connection.start["status"] == 400
    assert (b"connection", b"close") in connection.start["headers"]


async def test_a_body_dribbled_in_many_small_chunks_is_waited_for_only_so_long(monkeypatch):
    """The bound is on the whole drain, not per chunk: one byte every so often must not hold
    the answer (and the request's task) for as long as the peer keeps dribbling."""
    monkeypatch.setattr(http, "DRAIN_SECONDS", 0.1)

    class Dribbling(Connection):
        async def receive(self) -> dict:
            await asyncio.sleep(0.02)
            self.read += 1
            return {"type": "http.request", "body": b"x", "more_body": True}

    connection = Dribbling()
    await answer_after_the_body(answering_after(0, 401))(scope((b"content-length", b"1000000")),
                                                         connection.receive, connection.send)
    assert connection.start["status"] == 401
    assert (b"connection", b"close") in connection.start["headers"]
    assert connection.read < 50  # gave up after the bound, long before a million bytes


async def test_the_body_is_waited_for_after_the_app_returned():
    """Load shedding counts a request until the app returns: an early answer held while the
    body is read must not hold its slot (a peer could then take every slot with bodies it
    never sends)."""
    events: list[str] = []

    async def app(scope, receive, send):
        try:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})
        finally:
            events.append("app returned")

    connection = Connection(b"a" * 10, b"b" * 10, b"c" * 10)

    async def noting_send(message):
        events.append(message["type"])
        await connection.send(message)

    await answer_after_the_body(app)(scope(LENGTH_30), connection.receive, noting_send)
    assert events == ["app returned", "http.response.start", "http.response.body"]
    assert connection.start["read_before"] == 3


async def test_past_the_number_of_waits_at_once_answers_go_out_at_once_with_connection_close(monkeypatch):
    monkeypatch.setattr(http, "DRAINS_AT_ONCE", 1)
    middleware = answer_after_the_body(answering_after(0, 401))
    stalled = Connection(b"x", stalls=True)
    waiting = asyncio.create_task(middleware(scope(LENGTH_30), stalled.receive, stalled.send))
    await asyncio.sleep(0.05)  # the first waits for its body
    second = Connection(b"y", stalls=True)
    await asyncio.wait_for(middleware(scope(LENGTH_30), second.receive, second.send), 1.0)
    assert second.start["read_before"] == 0
    assert (b"connection", b"close") in second.start["headers"]
    waiting.cancel()


async def test_a_client_waiting_for_100_continue_is_not_asked_for_its_body():
    connection = Connection(b"x" * 30)
    await answer_after_the_body(answering_after(0, 401))(scope(LENGTH_30, (b"expect", b"100-continue")),
                                                         connection.receive, connection.send)
    assert connection.read == 0
    assert (b"connection", b"close") in connection.start["headers"]


async def test_an_answer_that_already_says_connection_close_gets_no_second_header(monkeypatch):
    monkeypatch.setattr(http, "DRAIN_SECONDS", 0.05)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 400, "headers": [(b"Connection", b"close")]})
        await send({"type": "http.response.body", "body": b""})

    connection = Connection(b"x", stalls=True)
    await answer_after_the_body(app)(scope(LENGTH_30), connection.receive, connection.send)
    assert [name.lower() for name, _ in connection.start["headers"]].count(b"connection") == 1
