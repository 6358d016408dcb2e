"""The sign-in experience's scenarios: what every sign-in page load asks for."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

from tessera_bench.scenario import Request, Scenario

REDIRECT_URI = "https://bench.example/callback"


async def well_known_sign_in_experience(ctx, client) -> Request:
    return Request("GET", "/api/.well-known/sign-in-exp")


async def well_known_phrases(ctx, client) -> Request:
    return Request("GET", "/api/.well-known/phrases?lng=fr")


async def sign_in_page(ctx, client) -> Request:
    """The hosted sign-in page of one live interaction (checked with identity over rpc,
    rendered in the browser's language each time)."""
    headers = await ctx.management_headers(client)
    created = await client.post(f"{ctx.url}/api/applications", headers=headers, json={
        "name": "bench sign-in page", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []},
    })
    created.raise_for_status()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode({"client_id": created.json()["id"], "redirect_uri": REDIRECT_URI, "response_type": "code",
                       "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"})
    started = await client.get(f"{ctx.url}/oidc/auth?{query}", follow_redirects=False)
    cookie = started.cookies.get("_interaction")
    if started.status_code != 303 or not cookie:
        raise RuntimeError(f"/oidc/auth did not start an interaction: {started.status_code}")
    return Request("GET", "/sign-in", headers={"cookie": f"_interaction={cookie}", "accept-language": "en"})


SCENARIOS = [
    Scenario("GET /api/.well-known/sign-in-exp (anonymous)", well_known_sign_in_experience),
    Scenario("GET /api/.well-known/phrases?lng=fr", well_known_phrases),
    Scenario("GET /sign-in (page, live interaction)", sign_in_page),
]
