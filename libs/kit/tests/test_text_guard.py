"""The edge rule against NUL and invalid UTF-8, on bodies that arrive in pieces."""

import pytest

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
