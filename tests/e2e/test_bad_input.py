"""Bad input on every public route that takes no token, through the gateway: the interaction API,
the sign-in pages and `/oidc/*`. Oversized and malformed bodies, wrong content types, invalid
UTF-8, deep nesting, huge headers and cookies: a clear 4xx in the surface's error format (Logto's
under /api, OAuth's under /oidc; a page answers a page or a redirect), never a 5xx. And a slow
client dribbling a body does not stop anyone else from being answered."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from tessera_events import SYSTEM
from tessera_kit.assertion import AssertionSigner
from tessera_kit.http import DRAIN_LIMIT

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-bad-input-admin"}
REDIRECT_URI = "https://app.example/callback"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# (name, body, content type): each is wrong in its own way
BAD_BODIES = [
    ("oversized json", b'{"event":"SignIn","x":"' + b"a" * 300_000 + b'"}', JSON),
    ("oversized form", b"identifier=" + b"a" * 300_000, FORM),
    ("truncated json", b'{"event": "SignIn", "identifier": {', JSON),
    ("json array", b"[1, 2, 3]", JSON),
    ("json string", b'"SignIn"', JSON),
    ("deep json", b"[" * 5000 + b"]" * 5000, JSON),
    ("deep object", b'{"a":' * 3000 + b"1" + b"}" * 3000, JSON),
    ("invalid utf-8 json", b'{"event": "\xff\xfe", "identifier": {"username": "\xc3"}}', JSON),
    ("invalid utf-8 form", b"identifier=\xff\xfe&password=%FF%FE", FORM),
    ("nul in form", b"identifier=a%00b&password=x", FORM),
    ("nul in json", b'{"event": "SignIn", "identifier": {"username": "a\\u0000", "password": "x"}}', JSON),
    ("text/plain", b'{"event": "SignIn"}', "text/plain"),
    ("xml", b"<event>SignIn</event>", "application/xml"),
    ("multipart", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--x--\r\n",
     "multipart/form-data; boundary=x"),
    ("no content type", b'{"event": "SignIn"}', None),
]
INTERACTION_WRITES = [
    ("PUT", "/api/interaction"), ("PUT", "/api/interaction/event"), ("PATCH", "/api/interaction/identifiers"),
    ("PUT", "/api/interaction/profile"), ("PATCH", "/api/interaction/profile"),
    ("POST", "/api/interaction/verification/verification-code"),
    ("POST", "/api/interaction/verification/social-authorization-uri"),
    ("POST", "/api/interaction/submit"), ("POST", "/api/interaction/consent"),
]
PAGE_POSTS = ["/sign-in", "/sign-in/profile", "/register", "/register/profile", "/forgot-password",
              "/forgot-password/reset", "/sign-in/verification-code", "/sign-in/verification-code/verify",
              "/register/verification-code", "/sign-in/social/nothing", "/sign-in/consent"]
OIDC_POSTS = ["/oidc/auth", "/oidc/token", "/oidc/token/introspection", "/oidc/token/revocation", "/oidc/me",
              "/oidc/session/end", "/oidc/session/end/confirm"]


@pytest.fixture
async def browser(stack):
    """A browser with a live interaction (its cookie jar), writing from the pages' own origin."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        app = await api.post("/api/applications", headers=ADMIN, json={
            "name": f"bad-input-{secrets.token_hex(3)}", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []}})
        assert app.status_code == 200, app.text
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, follow_redirects=False,
                                 headers={"origin": stack.url}) as client:
        query = {"client_id": app.json()["id"], "redirect_uri": REDIRECT_URI, "response_type": "code",
                 "scope": "openid", "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
        response = await client.get("/oidc/auth?" + urlencode(query))
        assert response.status_code == 303 and "_interaction" in client.cookies, response.text
        yield client


def headers_for(content_type: str | None) -> dict[str, str]:
    return {"content-type": content_type} if content_type else {}


def assert_logto_4xx(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert 400 <= response.status_code < 500, (where, response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), (where, body)


def assert_oauth_4xx(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert 400 <= response.status_code < 500, (where, response.status_code, response.text[:300])
    assert isinstance(response.json().get("error"), str), (where, response.text[:300])


async def send_bad(client: httpx.AsyncClient, method: str, path: str, name: str, body: bytes,
                   content_type: str | None) -> httpx.Response | None:
    """The answer, or None when an oversized body made the connection close before the client
    read the 413: the service answers early and closes (RFC 9112 §9.6), and a client still
    sending may see the reset first. Every other body must get an answer."""
    try:
        return await client.request(method, path, content=body, headers=headers_for(content_type))
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        if name.startswith("oversized"):
            return None
        raise


@pytest.mark.parametrize("name,body,content_type", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_interaction_api_answers_bad_bodies_with_a_logto_4xx(browser, name, body, content_type):
    for method, path in INTERACTION_WRITES:
        response = await send_bad(browser, method, path, name, body, content_type)
        if response is not None:
            assert_logto_4xx(response)
    # and the interaction is still usable after all that
    response = await browser.put("/api/interaction", json={"event": "Register"})
    assert response.status_code == 204, response.text


async def test_interaction_api_refuses_an_oversized_body_with_413(browser):
    response = await browser.put("/api/interaction", content=b'{"event":"' + b"a" * 20_000 + b'"}',
                                 headers={"content-type": JSON})
    assert response.status_code == 413, response.text
    assert_logto_4xx(response)


@pytest.mark.parametrize("name,body,content_type", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_pages_answer_bad_bodies_without_a_server_error(browser, name, body, content_type):
    for path in PAGE_POSTS:
        response = await send_bad(browser, "POST", path, name, body, content_type)
        if response is None:
            continue
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith(JSON):
            assert_logto_4xx(response)
    # the sign-in page still renders for this browser
    page = await browser.get("/sign-in")
    assert page.status_code == 200 and "<form" in page.text, page.text[:300]


@pytest.mark.parametrize("name,body,content_type", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_oidc_answers_bad_bodies_with_an_oauth_4xx(stack, name, body, content_type):
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, follow_redirects=False) as anonymous:
        for path in OIDC_POSTS:
            response = await send_bad(anonymous, "POST", path, name, body, content_type)
            if response is None:
                continue
            if path == "/oidc/session/end" and response.status_code == 200:
                continue  # no parameters at all: the logout confirmation page, as designed
            assert_oauth_4xx(response)


async def test_invalid_utf8_json_at_the_token_endpoint_is_invalid_request(stack):
    """msgspec raises UnicodeDecodeError (not DecodeError) for bytes that are not UTF-8: that
    was a 500 `server_error` on every /oidc route that reads a JSON body."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as anonymous:
        for path in ("/oidc/token", "/oidc/auth", "/oidc/token/introspection", "/oidc/session/end/confirm"):
            response = await anonymous.post(path, content=b'{"grant_type": "\xff"}', headers={"content-type": JSON})
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"] == "invalid_request"


async def test_a_body_over_a_services_cap_gets_its_413_not_a_502(stack, browser):
    """The service answers 413 from the head alone and closes with the body unread; the gateway,
    still sending it, relays that answer (it was a 502 `service.unavailable`)."""
    big_form = b"a=" + b"b" * 2_000_000
    for path in ("/oidc/auth", "/oidc/session/end/confirm"):
        response = await browser.post(path, content=big_form, headers={"content-type": FORM})
        assert response.status_code == 413, (path, response.status_code, response.text[:200])
        assert_oauth_4xx(response)
    response = await browser.put("/api/interaction", content=b'{"a":"' + b"b" * 2_000_000 + b'"}',
                                 headers={"content-type": JSON})
    assert response.status_code == 413, response.text[:200]
    assert_logto_4xx(response)
    response = await browser.post("/sign-in/social/nothing", content=big_form, headers={"content-type": FORM})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes,
                    body: bytes) -> tuple[bytes, bool]:
    """Send one request, read its answer's head and body: (head, whether the connection is
    still open a moment later)."""
    writer.write(head + body)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(next(line.split(b":")[1] for line in answer.lower().split(b"\r\n")
                      if line.startswith(b"content-length:")))
    await asyncio.wait_for(reader.readexactly(length), 10)
    try:
        closed = await asyncio.wait_for(reader.read(1), 0.3) == b""
    except TimeoutError:
        closed = False
    except ConnectionError:
        closed = True
    return answer, not closed


@pytest.mark.parametrize("what,signed,method,path", [
    ("no assertion (401)", False, "POST", "/api/interaction/submit"),
    ("no interaction (400)", True, "POST", "/api/interaction/submit"),
    ("no interaction (400)", True, "POST", "/api/interaction/consent"),
    ("over the cap (413)", True, "PUT", "/api/interaction"),
])
async def test_a_service_answering_before_the_body_keeps_the_connection_usable(stack, what, signed, method, path):
    """The gateway reuses its connections to a service. An answer decided before the body was
    read (no interaction, no assertion, over the cap) used to go out on a connection the server
    then closed without saying so (granian drops a keep-alive connection whose body was left
    unread): the gateway's next POST on it met the close and became a 503 (CI saw it on the
    PUT after these). The answer now waits for the body, and the same connection answers again."""
    target = urlsplit(stack.service_url("experience"))
    signer = AssertionSigner(stack.internal_key)
    body = b'{"event":"SignIn","x":"' + b"a" * 300_000 + b'"}'
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    try:
        for round_ in range(2):
            request_id = f"early-{round_}".encode()
            assertion = b""
            if signed:
                assertion = b"x-tessera-assertion: " + signer.sign(method, path.encode(), SYSTEM, request_id) + b"\r\n"
            head = (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nhost: x\r\nx-request-id: " + request_id
                    + b"\r\n" + assertion + b"content-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode() + b"\r\n\r\n")
            answer, open_ = await _exchange(reader, writer, head, body)
            assert answer.split(b" ")[1][:1] == b"4", (what, answer)
            assert b"connection: close" not in answer.lower(), (what, answer)
            assert open_, (what, round_, "the server closed a connection its answer kept alive")
    finally:
        writer.close()


async def test_a_body_past_the_drain_bound_gets_an_answer_that_says_the_connection_closes(stack):
    """Past DRAIN_LIMIT the service stops reading: its answer must say `Connection: close` (ours or
    granian's), so the gateway never keeps a connection the server is about to drop."""
    target = urlsplit(stack.service_url("experience"))
    body = b"a" * (DRAIN_LIMIT + 1_000_000)
    request_id = b"early-big"
    assertion = AssertionSigner(stack.internal_key).sign("POST", b"/api/interaction/submit", SYSTEM, request_id)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    try:
        head = (b"POST /api/interaction/submit HTTP/1.1\r\nhost: x\r\nx-request-id: " + request_id
                + b"\r\nx-tessera-assertion: " + assertion + b"\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
        writer.write(head)
        writer.write(body)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert answer.startswith(b"HTTP/1.1 4"), answer
        assert b"connection: close" in answer.lower(), answer
    finally:
        writer.close()


@pytest.mark.parametrize("what,headers", [
    ("a 60 KiB header", {"x-filler": "a" * 60_000}),
    ("a 1 MiB header", {"x-filler": "a" * 1_000_000}),
    ("a 60 KiB cookie", {"cookie": "_interaction=" + "a" * 60_000}),
    ("a 1 MiB cookie", {"cookie": "_interaction=" + "a" * 1_000_000}),
    ("ten thousand cookies", {"cookie": "; ".join(f"c{i}=v" for i in range(10_000))}),
    ("a cookie that is not ASCII", {"cookie": "_interaction=x; _interaction.sig=".encode() + "\u00e9".encode() * 10}),
    ("many headers", [(f"x-h{i}", "v") for i in range(2_000)]),
    ("a bad origin", {"origin": "\x7f" * 3}),
])
async def test_huge_headers_and_cookies_get_a_clear_4xx_or_an_answer(stack, what, headers):
    for method, path in [("GET", "/sign-in"), ("PUT", "/api/interaction"), ("GET", "/oidc/auth"),
                         ("POST", "/oidc/token"), ("GET", "/api/.well-known/sign-in-exp")]:
        try:
            async with httpx.AsyncClient(base_url=stack.url, timeout=30, follow_redirects=False) as client:
                response = await client.request(method, path, headers=headers)
        except httpx.RemoteProtocolError:
            pytest.fail(f"{what}: {method} {path}: the connection was dropped without an answer")
        assert response.status_code < 500, (what, method, path, response.status_code, response.text[:200])


async def test_a_slow_client_does_not_stop_the_others(stack):
    """Clients that send their head, then a body one byte at a time (and one that never ends its
    head): meanwhile every other request is answered. Completion, not timing, is asserted."""
    target = urlsplit(stack.url)
    slow: list[asyncio.StreamWriter] = []
    heads = [
        b"PUT /api/interaction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n",
        b"POST /oidc/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 4000\r\n\r\n",
        b"POST /sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 4000\r\n\r\n",
        b"GET /sign-in HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # a head that never ends
    ]
    try:
        for i in range(20):
            _, writer = await asyncio.open_connection(target.hostname, target.port)
            writer.write(heads[i % len(heads)])
            await writer.drain()
            slow.append(writer)

        async def dribble() -> None:
            for _ in range(50):
                for writer in slow:
                    if not writer.is_closing():
                        writer.write(b"a")
                await asyncio.sleep(0.05)

        dribbling = asyncio.create_task(dribble())
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            answered = 0
            while not dribbling.done() or answered < 40:
                responses = await asyncio.gather(
                    client.get("/oidc/.well-known/openid-configuration"),
                    client.get("/api/.well-known/sign-in-exp"),
                    client.get("/api/users", headers=ADMIN),
                    client.put("/api/interaction", json={"event": "SignIn"}),
                )
                assert [r.status_code for r in responses][:3] == [200, 200, 200], [r.text[:100] for r in responses]
                assert responses[3].status_code == 400  # no interaction: session.not_found, in Logto's format
                answered += len(responses)
        await dribbling
        assert answered >= 40
    finally:
        for writer in slow:
            writer.close()
