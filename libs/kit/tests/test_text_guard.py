"""The edge rule against NUL and invalid UTF-8, on bodies that arrive in pieces."""

import pytest

import asyncio

from tessera_kit.text_guard import InvalidText, _scanning, check_path, check_query, text_guard_middleware


def receive_of(*chunks: bytes):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0)

    return receive


async def read_all(receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message["body"]
        if not message["more_body"]:
            return body


@pytest.mark.parametrize("chunks", [
    (b'{"a": "x\\u0000"}',),
    (b'{"a": "x\\u', b'0000"}'),          # the escape split across two chunks
    (b'{"a": "x\\', b'u00', b'00"}'),     # and across three
])
async def test_json_nul_escape_is_found_across_chunks(chunks):
    with pytest.raises(InvalidText):
        await read_all(_scanning(receive_of(*chunks), (b"\x00", b"\\u0000")))


async def test_clean_bodies_pass_unchanged():
    chunks = (b'{"a": "\\u00e9 \\u0001', b'0000"}')
    assert await read_all(_scanning(receive_of(*chunks), (b"\x00", b"\\u0000"))) == b"".join(chunks)


async def test_form_percent_nul_split_across_chunks():
    with pytest.raises(InvalidText):
        await read_all(_scanning(receive_of(b"client_id=%", b"00"), (b"\x00", b"%00")))


@pytest.mark.parametrize("raw", [b"/api/users/%00", b"/api/users/%ff", b"/api/users/\x01", b"/api/a%0Ab"])
def test_bad_paths(raw):
    with pytest.raises(InvalidText):
        check_path(raw)


def test_good_paths_and_queries():
    check_path(b"/api/resources/%E2%82%AC/scopes")
    check_query(b"search=%25caf%C3%A9&page=1")
    with pytest.raises(InvalidText):
        check_query(b"search=a%00")


class Connection:
    """A server's side of one request: its body in chunks, then (as granian does) a receive
    that waits until the client leaves."""

    def __init__(self, *chunks: bytes):
        self.messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                         for i, c in enumerate(chunks)]
        self.read = 0
        self.waited_past_the_end = False
        self.sent: list[dict] = []

    async def receive(self) -> dict:
        if self.messages:
            self.read += 1
            return self.messages.pop(0)
        self.waited_past_the_end = True
        await asyncio.Event().wait()  # the client stays; wait_for in the guard gives up

    async def send(self, message: dict) -> None:
        self.sent.append({**message, "read_before": self.read})


def refusing_after(reads: int):
    """An app that reads `reads` body messages, then answers 413."""
    async def app(scope, receive, send):
        for _ in range(reads):
            await receive()
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too big"})

    return app


SCOPE = {"type": "http", "method": "POST", "path": "/api/x", "raw_path": b"/api/x", "query_string": b"",
         "headers": [(b"content-type", b"application/octet-stream")]}


async def test_an_early_413_waits_until_the_rest_of_the_body_is_read():
    connection = Connection(b"a" * 10, b"b" * 10, b"c" * 10)
    await text_guard_middleware(refusing_after(1))(SCOPE, connection.receive, connection.send)
    assert connection.sent[0]["status"] == 413
    assert connection.sent[0]["read_before"] == 3  # the whole body, before the answer
    assert not connection.waited_past_the_end


async def test_a_413_after_the_whole_body_was_read_goes_out_at_once():
    """Nothing is left to read: the guard must not wait for a message that only comes when the
    client leaves (seconds, for every such answer)."""
    connection = Connection(b"a" * 10, b"b" * 10)
    await text_guard_middleware(refusing_after(2))(SCOPE, connection.receive, connection.send)
    assert [m["status"] for m in connection.sent if m["type"] == "http.response.start"] == [413]
    assert not connection.waited_past_the_end
