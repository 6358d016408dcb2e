"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), as oidc-provider shows it:
`GET|POST /oidc/session/end` checks the request and answers a page with a form to
`/oidc/session/end/confirm`, carrying a signed, short-lived token bound to the session; the
confirmation ends the session and redirects to the `post_logout_redirect_uri` (with `state`)
or to `/oidc/session/end/success`.

§2: the user must be asked unless an `id_token_hint` shows the request comes from an
application of the signed-in user's session. So the form submits itself only then (or when
there is no session to end); otherwise it asks, and only the user's "Sign out" ends the
session: a bare link or a cross-site page cannot log anyone out.
"""

from __future__ import annotations

import base64
import html
import time
from urllib.parse import urlencode

import msgspec
from joserfc.errors import JoseError
from litestar import Request, Response
from litestar.datastructures import Cookie

from tessera_identity.oidc import store
from tessera_identity.oidc.authorize import SESSION_COOKIE, end_session_rows, signed_cookie
from tessera_identity.oidc.errors import OAuthError, invalid_request
from tessera_identity.oidc.params import Params
from tessera_identity.oidc.provider import Provider

LOGOUT_TOKEN = "logout"
CONFIRM_WITHIN_SECONDS = 600


async def end_session(provider: Provider, params: Params, request: Request) -> Response:
    hint = params.get("id_token_hint")
    hinted_user: str | None = None
    client_id = params.get("client_id")
    redirect_uri = params.get("post_logout_redirect_uri")
    state = params.get("state")
    if hint is not None:
        try:
            # §2: the hint may have expired; only its signature and issuer matter.
            _, claims = provider.keys.verify(hint)
        except (JoseError, ValueError, KeyError, TypeError):
            raise invalid_request("could not validate id_token_hint") from None
        if claims.get("iss") != provider.issuer:
            raise invalid_request("id_token_hint was not issued by this provider")
        audience = claims.get("aud")
        hinted = audience if isinstance(audience, str) else (audience or [None])[0]
        if client_id is not None and client_id != hinted:
            raise invalid_request("client_id does not match the id_token_hint")
        client_id = hinted
        hinted_user = claims.get("sub")
    if redirect_uri is not None:
        if client_id is None:
            raise invalid_request("post_logout_redirect_uri requires client_id or id_token_hint")
        client = await provider.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "client is invalid")
        if redirect_uri not in client.post_logout_redirect_uris:
            client = await provider.clients.read_again_before_refusing(client) or client
        if redirect_uri not in client.post_logout_redirect_uris:
            raise invalid_request("post_logout_redirect_uri not registered for this client")
    session_id = provider.cookie_value(request, SESSION_COOKIE)
    payload = {"sid": session_id, "uri": redirect_uri, "state": state, "exp": int(time.time()) + CONFIRM_WITHIN_SECONDS}
    encoded = base64.urlsafe_b64encode(msgspec.json.encode(payload)).decode().rstrip("=")
    xsrf = provider.cookies.sign(LOGOUT_TOKEN, encoded)
    action = f"{provider.issuer}/session/end/confirm"
    session = await store.find_session(provider.pool, provider.tenant_id, session_id) if session_id else None
    if session is None or (hinted_user is not None and hinted_user == session["account_id"]):
        page = (
            "<!DOCTYPE html><html><head><title>Signing out</title></head>"
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(action)}">'
            f'<input type="hidden" name="xsrf" value="{html.escape(xsrf)}"/>'
            '<input type="hidden" name="logout" value="yes"/>'
            '<noscript><button type="submit">Sign out</button></noscript></form></body></html>'
        )
    else:
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign out</title></head><body>'
            f'<form method="post" action="{html.escape(action)}">'
            "<h1>Do you want to sign out?</h1>"
            f'<input type="hidden" name="xsrf" value="{html.escape(xsrf)}"/>'
            '<button type="submit" name="logout" value="yes" autofocus>Sign out</button> '
            '<button type="submit">Stay signed in</button></form></body></html>'
        )
    # Never inside another site's frame, where the question could be clicked for the user.
    headers = {"cache-control": "no-store", "content-security-policy": "frame-ancestors 'none'",
               "x-frame-options": "DENY"}
    return Response(page, status_code=200, media_type="text/html", headers=headers)


async def confirm(provider: Provider, params: Params, request: Request) -> Response:
    encoded = provider.cookies.unsign(LOGOUT_TOKEN, params.get("xsrf"))
    if encoded is None:
        raise invalid_request("xsrf token invalid")
    payload = msgspec.json.decode(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    session_id = provider.cookie_value(request, SESSION_COOKIE)
    if payload["exp"] < time.time() or payload["sid"] != session_id:
        raise invalid_request("logout confirmation expired or belongs to another session")
    cookies: list[Cookie] = []
    if params.get("logout") == "yes" and session_id is not None:
        async with provider.pool.acquire() as conn, conn.transaction():
            await end_session_rows(conn, provider, session_id, reason="logout")
        cookies.extend(signed_cookie(provider, SESSION_COOKIE, None, 0))
    if payload["uri"]:
        query = urlencode({"state": payload["state"]}) if payload["state"] else ""
        separator = "&" if "?" in payload["uri"] else "?"
        location = payload["uri"] + (separator + query if query else "")
    else:
        location = f"{provider.issuer}/session/end/success"
    return Response(None, status_code=303, headers={"location": location, "cache-control": "no-store"},
                    cookies=cookies)


SUCCESS_PAGE = (
    "<!DOCTYPE html><html><head><title>Signed out</title></head>"
    "<body><p>Logout success.</p></body></html>"
)
