"""Webhooks end to end: a hook made through the gateway receives PostSignIn when a user signs
in through the interaction API, signed; audit-log shows the TriggerHook log under the id that
the hook's recent logs give."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from urllib.parse import urlencode

import httpx
import pytest
from aiohttp import web

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-admin"}
PASSWORD = "e2e-Passw0rd"


async def _until(condition, tries: int = 600):
    for _ in range(tries):
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


async def test_sign_in_fires_post_sign_in_and_is_logged(stack):
    received: list[tuple[dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", handle)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=15) as api, \
                httpx.AsyncClient(base_url=stack.url, timeout=15, follow_redirects=False,
                                  headers={"origin": stack.url}) as browser:  # the sign-in pages' origin
            hook = await api.post("/api/hooks", headers=ADMIN, json={
                "name": "e2e", "events": ["PostSignIn"], "config": {"url": url}})
            assert hook.status_code == 201, hook.text
            hook = hook.json()
            app = await api.post("/api/applications", headers=ADMIN, json={
                "name": f"hooks-e2e-{secrets.token_hex(3)}", "type": "SPA",
                "oidcClientMetadata": {"redirectUris": ["https://app.example/cb"], "postLogoutRedirectUris": []}})
            username = f"hook_{secrets.token_hex(4)}"
            user = await api.post("/api/users", headers=ADMIN, json={"username": username, "password": PASSWORD})
            assert user.status_code == 200, user.text
            query = {"client_id": app.json()["id"], "redirect_uri": "https://app.example/cb", "response_type": "code",
                     "scope": "openid", "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
            assert (await browser.get("/oidc/auth?" + urlencode(query))).status_code == 303
            put = await browser.put("/api/interaction", json={
                "event": "SignIn", "identifier": {"username": username, "password": PASSWORD}})
            assert put.status_code == 204, put.text
            assert (await browser.post("/api/interaction/submit")).status_code == 200

            await _until(lambda: asyncio.sleep(0, result=bool(received)))
            headers, body = received[0]
            payload = json.loads(body)
            assert payload["event"] == "PostSignIn" and payload["userId"] == user.json()["id"]
            assert payload["hookId"] == hook["id"]
            assert headers["logto-signature-sha-256"] == hmac.new(
                hook["signingKey"].encode(), body, hashlib.sha256).hexdigest()

            async def recent():
                logs = (await api.get(f"/api/hooks/{hook['id']}/recent-logs", headers=ADMIN)).json()
                return logs or None
            (recent_log,) = await _until(recent)
            assert recent_log["key"] == "TriggerHook.PostSignIn" and recent_log["payload"]["result"] == "Success"

            async def logged():
                response = await api.get(f"/api/logs/{recent_log['id']}", headers=ADMIN)
                return response.json() if response.status_code == 200 else None
            log = await _until(logged)
            assert log["key"] == "TriggerHook.PostSignIn" and log["payload"]["hookId"] == hook["id"]
            assert log["payload"]["hookRequest"]["body"] == payload
            stats = await api.get(f"/api/hooks/{hook['id']}", headers=ADMIN, params={"includeExecutionStats": "1"})
            assert stats.json()["executionStats"] == {"requestCount": 1, "successCount": 1}
    finally:
        await runner.cleanup()
