"""What counts as a right answer to the client-credentials row's request, for ours and for the
bare oidc-provider alike: 200, a Bearer access token that is a JWT (typ at+jwt) signed ES384
by a key of the server's JWKS, whose aud is the resource, with an expiry, carrying the
requested scope. The bench checks one answer before and one after each run, so a server that is
fast because it answers an error (or an opaque token, or an unsigned one) cannot pass as fast.
"""

from __future__ import annotations

import json
import time

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tessera_bench.scenario import Request

ALG = "ES384"


class WrongAnswer(AssertionError):
    pass


def check_token_answer(status: int, body: bytes | str, *, resource: str, scope: str, jwks: dict) -> dict:
    """The token's claims when the answer is right; raises WrongAnswer saying what is wrong."""
    shown = body[:160] if isinstance(body, str) else body[:160].decode(errors="replace")
    if status != 200:
        raise WrongAnswer(f"status {status}: {shown}")
    try:
        answer = json.loads(body)
    except ValueError:
        raise WrongAnswer(f"not JSON: {shown}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise WrongAnswer(f"no access_token: {shown}")
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise WrongAnswer(f"token_type {answer.get('token_type')!r}, not Bearer")
    token = answer["access_token"]
    if token.count(".") != 2:
        raise WrongAnswer("the access token is not a JWT (opaque?)")
    try:
        keys = KeySet.import_key_set(jwks)
        decoded = jwt.decode(token, keys, algorithms=[ALG])
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise WrongAnswer(f"the access token is no {ALG} JWT signed by the server's JWKS: {exc}") from None
    header, claims = decoded.header, decoded.claims
    if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
        raise WrongAnswer(f"typ {header.get('typ')!r}, not at+jwt (RFC 9068)")
    audience = claims.get("aud")
    if audience != resource and audience != [resource]:
        raise WrongAnswer(f"aud {audience!r}, not the resource {resource!r}")
    expiry = claims.get("exp")
    if not isinstance(expiry, int) or expiry <= time.time():
        raise WrongAnswer(f"exp {expiry!r}: missing or past")
    granted = set(str(claims.get("scope", "")).split())
    if not set(scope.split()) <= granted:
        raise WrongAnswer(f"scope {claims.get('scope')!r} lacks {scope!r}")
    return claims


async def fetch_and_check(client: httpx.AsyncClient, url: str, request: Request, *, resource: str,
                          scope: str) -> dict:
    """Send the row's request (as wrk sends it) to `url` once and check the answer against the
    server's `/oidc/jwks`."""
    keys = await client.get(f"{url.rstrip('/')}/oidc/jwks")
    if keys.status_code != 200:
        raise WrongAnswer(f"GET /oidc/jwks: status {keys.status_code}")
    response = await client.request(request.method, url.rstrip("/") + request.path,
                                    headers=request.headers, content=request.body)
    return check_token_answer(response.status_code, response.content, resource=resource, scope=scope,
                              jwks=keys.json())
