"""Client authentication at the token, revocation and introspection endpoints
(RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`, `client_secret_post`, `none`."""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote_plus

from litestar import Request

from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.errors import invalid_client, invalid_request
from tessera_identity.oidc.params import Params
from tessera_identity.oidc.provider import Provider


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("invalid Basic authorization header", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client("invalid Basic authorization header", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(provider: Provider, request: Request, params: Params,
                              *, allow_public: bool = True) -> Client:
    basic = _basic_credentials(request)
    body_id, body_secret = params.get("client_id"), params.get("client_secret")
    if basic and body_secret is not None:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
        raise invalid_request("client authentication must only be provided using one mechanism")
    if basic:
        if body_id is not None and body_id != basic[0]:
            raise invalid_request("mismatch between client_id in the body and in the Authorization header")
        client_id, secret, method = basic[0], basic[1], "client_secret_basic"
    elif body_secret is not None:
        if body_id is None:
            raise invalid_request("client_secret_post requires client_id")
        client_id, secret, method = body_id, body_secret, "client_secret_post"
    elif body_id is not None:
        client_id, secret, method = body_id, None, "none"
    else:
        raise invalid_client("no client authentication mechanism provided")

    client = await provider.clients.get(client_id)
    if client is None:
        raise invalid_client("client not found", basic=method == "client_secret_basic")
    if secret is None:
        if not client.is_public:
            raise invalid_client("this client must authenticate with its secret")
        if not allow_public:
            raise invalid_client("only confidential clients may use this endpoint")
        return client
    if not _secret_matches(client, secret):
        client = await provider.clients.read_again_before_refusing(client)  # a new secret?
    if client is None or not _secret_matches(client, secret):
        raise invalid_client("invalid client secret", basic=method == "client_secret_basic")
    if not allow_public and client.is_public:
        raise invalid_client("only confidential clients may use this endpoint")
    return client


def _secret_matches(client: Client, secret: str) -> bool:
    # Constant time: the comparison must not tell how much of a guessed secret was right.
    return bool(client.secret) and hmac.compare_digest(client.secret.encode(), secret.encode())
