"""Sign-in by e-mail code: one browser asks for a code, reads it from the mail, signs in with it.

Per flow: `/oidc/auth` → `PUT /api/interaction` (SignIn) → `POST .../verification/verification-code`
(experience counts the code limits, stores the code, asks connectors over rpc; the SMTP
connector `simple-mail-transfer-protocol` connects, logs in and sends) → the code read from the
received mail → `PATCH /api/interaction/identifiers` (email + code) → `POST /api/interaction/submit`.

The SMTP server is aiosmtpd (as the tests use), started by the bench on a free port in the
bench's own event loop, with a login, so the connector does what it does for a real relay
(one connection, EHLO, AUTH, MAIL, RCPT, DATA per message). Its handler hands each message's
code to the flow waiting for that recipient.

The code limits stay on (limits.py raises the per-address ones, since every client is one
address, and puts the production resend cooldown back): each sign-in goes to a recipient of its
own, from users created before the measurement, so neither the cooldown (1 per minute) nor the
quota (10 per hour) of a recipient is ever reached. If the seeded users run out, the flow
creates its user itself (counted in its time) and the bench says so.

The stack's email connector and sign-in experience are changed for the run and put back after;
a stack that already has an email connector (one is allowed) is left alone and the row skipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from typing import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

import httpx
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tessera_bench.browser import Browser, Connection
from tessera_bench.scenario import BenchContext
from tessera_bench.scenarios.oidc import JSON, REDIRECT_URI, Flow, FlowResult
from tessera_bench.scenarios.oidc import measure_flow as measure_flows

NAME = "sign-in by email code (send + verify + submit)"
FACTORY = "simple-mail-transfer-protocol"
USAGE_TYPES = ("SignIn", "Register", "ForgotPassword", "Generic")
SMTP_USER = "bench-mailer"
CODE_IN_MAIL = re.compile(r"Your sign-in code is (\d{4,8})\.")
# Users made before the run: more than the flow reaches on two cores (well under 100/s),
# so none is created while measuring.
USERS_PER_SECOND = 100
SEED_CONCURRENCY = 16


class Mailbox:
    """aiosmtpd's handler: the code of each message, to whoever waits for its recipient."""

    def __init__(self, password: bytes) -> None:
        self.password = password
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.received = 0

    def expect(self, recipient: str) -> asyncio.Future[str]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[recipient.lower()] = future
        return future

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
              and secrets.compare_digest(auth_data.password, self.password))
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.received += 1
        message = message_from_bytes(envelope.content, policy=default_policy)
        found = CODE_IN_MAIL.search(message.get_content())
        for recipient in envelope.rcpt_tos:
            future = self.waiting.pop(recipient.lower(), None)
            if future is not None and not future.done():
                if found:
                    future.set_result(found[1])
                else:
                    future.set_exception(AssertionError(f"no code in the mail: {message.get_content()[:80]!r}"))
        return "250 OK"


@dataclass
class CodeSignInSetup:
    client_id: str
    mailbox: Mailbox
    recipients: deque[str]
    make_user: Callable[[], Awaitable[str]]
    cleanup: contextlib.AsyncExitStack
    created_in_flow: int = 0
    first_error: str | None = None
    step_seconds: dict[str, list[float]] = field(default_factory=dict)
    connections: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)


def smtp_config(port: int, password: str) -> dict:
    return {"host": "127.0.0.1", "port": port, "auth": {"user": SMTP_USER, "pass": password},
            "fromEmail": "noreply@bench.invalid", "templates": [
                {"usageType": usage, "contentType": "text/plain", "subject": f"Your {usage} code",
                 "content": "Your sign-in code is {{code}}."} for usage in USAGE_TYPES]}


@contextlib.asynccontextmanager
async def smtp_server(mailbox: Mailbox) -> AsyncIterator[int]:
    """aiosmtpd on a free local port, in this event loop; answers its port."""
    loop = asyncio.get_running_loop()
    # aiosmtpd logs a deprecation of its own at every login (its `Session.login_data`).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    # A fixed hostname: aiosmtpd would otherwise look up this machine's FQDN per connection.
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="bench.invalid", authenticator=mailbox.authenticate,
                     auth_require_tls=False),
        "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _patch_sign_in_experience(ctx: BenchContext, client: httpx.AsyncClient, headers: dict, body: dict) -> None:
    """PATCH once experience's read model of connectors has caught up (its checks need them)."""
    for _ in range(200):
        response = await client.patch(f"{ctx.url}/api/sign-in-exp", headers=headers, json=body)
        if response.status_code == 200:
            return
        if response.json().get("code") != "sign_in_experiences.enabled_connector_not_found":
            raise RuntimeError(f"PATCH /api/sign-in-exp: {response.status_code} {response.text[:80]}")
        await asyncio.sleep(0.05)
    raise RuntimeError("experience never learnt of the SMTP connector")


# Sign-up by e-mail with a code and no password: a user who has an e-mail address lacks
# nothing at sign-in (a sign-up asking for a username and password would send users with
# only an address to the profile fulfilment).
PASSWORDLESS_EMAIL_SIGN_UP = {"identifiers": ["email"], "password": False, "verify": True}


def _with_email_code(sign_in: dict) -> dict:
    """The sign-in methods with e-mail + code added (or turned on), the others as they were
    (an added one takes a password too: a sign-up that sets one wants it on every method)."""
    methods = [dict(m) for m in sign_in.get("methods", [])]
    email = next((m for m in methods if m["identifier"] == "email"), None)
    if email is None:
        methods.append({"identifier": "email", "password": True, "verificationCode": True,
                        "isPasswordPrimary": False})
    else:
        email["verificationCode"] = True
    return {**sign_in, "methods": methods}


@contextlib.asynccontextmanager
async def email_code_sign_in(ctx: BenchContext, client: httpx.AsyncClient, smtp_port: int,
                             smtp_password: str) -> AsyncIterator[dict]:
    """The SMTP connector and a sign-in experience with e-mail codes; both put back after."""
    headers = await ctx.management_headers(client)
    listed = await client.get(f"{ctx.url}/api/connectors", headers=headers)
    if listed.status_code != 200:
        raise RuntimeError(f"GET /api/connectors: {listed.status_code} {listed.text[:60]}")
    if any(c.get("type") == "Email" for c in listed.json()):
        raise RuntimeError("the stack has an email connector already (one is allowed)")
    created = await client.post(f"{ctx.url}/api/connectors", headers=headers,
                                json={"connectorId": FACTORY, "config": smtp_config(smtp_port, smtp_password)})
    if created.status_code != 200:
        raise RuntimeError(f"POST /api/connectors: {created.status_code} {created.text[:60]}")
    connector_id = created.json()["id"]
    try:
        before = (await client.get(f"{ctx.url}/api/sign-in-exp", headers=headers)).json()
        await _patch_sign_in_experience(ctx, client, headers, {"signUp": PASSWORDLESS_EMAIL_SIGN_UP,
                                                              "signIn": _with_email_code(before["signIn"])})
        try:
            yield headers
        finally:
            await client.patch(f"{ctx.url}/api/sign-in-exp", headers=headers,
                               json={"signUp": before["signUp"], "signIn": before["signIn"]})
    finally:
        await client.delete(f"{ctx.url}/api/connectors/{connector_id}", headers=headers)


async def _seed_recipients(ctx: BenchContext, client: httpx.AsyncClient, headers: dict, count: int,
                           run: str) -> deque[str]:
    """`count` users, each with an e-mail address of its own, through the Management API."""
    recipients: deque[str] = deque()
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            email = f"code{n}.{run}@mail{n % 7}.bench.example"
            response = await client.post(f"{ctx.url}/api/users", headers=headers, json={"primaryEmail": email})
            response.raise_for_status()
            recipients.append(email)

    await asyncio.gather(*(worker() for _ in range(SEED_CONCURRENCY)))
    return recipients


async def _spa_client(ctx: BenchContext, client: httpx.AsyncClient, headers: dict) -> str:
    app = await client.post(f"{ctx.url}/api/applications", headers=headers, json={
        "name": "bench sign-in by email code", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []}})
    app.raise_for_status()
    return app.json()["id"]


async def code_sign_in(ctx: BenchContext, setup: CodeSignInSetup) -> None:
    """One browser: authorize (PKCE) → SignIn → send a code by e-mail → read it from the
    mail → identify with e-mail and code → submit. Raises if any step answers unexpectedly."""
    if setup.recipients:
        email = setup.recipients.popleft()
    else:
        setup.created_in_flow += 1
        email = await setup.make_user()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    connection = setup.connections.get_nowait() if not setup.connections.empty() else Connection(ctx.url)
    mail = setup.mailbox.expect(email)
    browser = Browser(connection)

    async def step(name: str, status: int, method: str, target: str, body: object = None) -> bytes:
        began = time.perf_counter()
        reply = await browser.request(method, target, body=b"" if body is None else json.dumps(body).encode(),
                                      content_type=None if body is None else JSON)
        setup.step_seconds.setdefault(name, []).append(time.perf_counter() - began)
        assert reply.status == status, (name, reply.status, reply.body)
        return reply.body

    try:
        query = urlencode({
            "client_id": setup.client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid", "state": "bench", "code_challenge": challenge, "code_challenge_method": "S256"})
        await step("authorize", 303, "GET", f"/oidc/auth?{query}")
        await step("start", 204, "PUT", "/api/interaction", {"event": "SignIn"})
        await step("send", 204, "POST", "/api/interaction/verification/verification-code", {"email": email})
        # The connector answered once the server had taken the message: it is in the mailbox.
        code = await asyncio.wait_for(mail, 10)
        await step("verify", 204, "PATCH", "/api/interaction/identifiers", {"email": email, "verificationCode": code})
        submitted = await step("submit", 200, "POST", "/api/interaction/submit")
        assert "/oidc/auth/" in json.loads(submitted)["redirectTo"], submitted
    except BaseException as exc:
        setup.first_error = setup.first_error or f"{type(exc).__name__}: {exc}"[:200]
        setup.mailbox.waiting.pop(email.lower(), None)
        await connection.close()  # in an unknown state: the next flow opens a new one
        raise
    setup.connections.put_nowait(connection)


async def prepare(ctx: BenchContext, client: httpx.AsyncClient, *, users: int = 1000) -> CodeSignInSetup:
    """The SMTP server, the connector and sign-in experience, an SPA client and the
    recipients; `setup.cleanup` stops and puts back what this started and changed."""
    smtp_password = secrets.token_urlsafe(16)
    mailbox = Mailbox(smtp_password.encode())
    run = secrets.token_hex(3)
    extra = iter(range(10**9))
    async with contextlib.AsyncExitStack() as cleanup:  # undone here only if the setup fails
        port = await cleanup.enter_async_context(smtp_server(mailbox))
        headers = await cleanup.enter_async_context(email_code_sign_in(ctx, client, port, smtp_password))
        client_id = await _spa_client(ctx, client, headers)
        recipients = await _seed_recipients(ctx, client, headers, users, run)

        async def make_user() -> str:
            return (await _seed_recipients(ctx, client, headers, 1, f"{run}x{next(extra)}"))[0]

        setup = CodeSignInSetup(client_id, mailbox, recipients, make_user, cleanup.pop_all())
    return setup


FLOWS = [Flow(NAME, prepare, code_sign_in)]


async def measure_flow(ctx: BenchContext, flow: Flow, *, seconds: float, client: httpx.AsyncClient,
                       settle: Callable[[], None] | None = None, meter=None) -> FlowResult:
    """As `oidc.measure_flow`, once the stack has consumed the seeded users' events, and
    with everything the setup started stopped and put back after."""
    setup = await prepare(ctx, client, users=int(seconds * USERS_PER_SECOND))
    async with setup.cleanup:
        if settle is not None:
            await asyncio.to_thread(settle)

        async def prepared(_ctx: BenchContext, _client: httpx.AsyncClient) -> CodeSignInSetup:
            return setup

        result = await measure_flows(ctx, Flow(flow.name, prepared, flow.run_once, flow.concurrency),
                                     seconds=seconds, client=client, meter=meter)
        while not setup.connections.empty():
            await setup.connections.get_nowait().close()
    if setup.created_in_flow:
        print(f"  {flow.name}: the seeded users ran out; {setup.created_in_flow} were created "
              "during the measurement (their cost is in the figure)", file=sys.stderr)
    print(f"  {flow.name}: {setup.mailbox.received} mails received", file=sys.stderr)
    medians = ", ".join(f"{name} {statistics.median(times) * 1000:.0f}" for name, times in setup.step_seconds.items())
    print(f"  {flow.name}: median ms per step: {medians}", file=sys.stderr)
    if setup.first_error:
        print(f"  {flow.name}: first error: {setup.first_error}", file=sys.stderr)
    return result
