"""Revoking what the OpenID Provider issued: the revocation endpoint (RFC 7009), and a user's
everything (called by the users context inside a suspension's or deletion's transaction, so a
suspended user's sessions, grants and refresh tokens stop working at once — Logto's bug §11.1
fixed).

JWT access tokens (issued for a resource) are self-contained: they stay valid until `exp`
(the resource's accessTokenTtl). Revoking one is accepted and has no effect (RFC 7009 §2.2
lets the server answer 200 for tokens it cannot revoke); opaque access tokens, refresh tokens,
codes, grants and sessions are deleted.
"""

from __future__ import annotations

import asyncpg

from tessera_events.identity import SessionEnded, TokenRevoked
from tessera_identity.oidc import store
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest
from tessera_identity.oidc.errors import OAuthError
from tessera_kit.outbox import Outbox


async def revoke_everything_for_user(
    conn: asyncpg.Connection, outbox: Outbox, tenant_id: str, user_id: str, *,
    session_reason: str = "revoked", token_reason: str = "user_revoked", keep_interactions: bool = False,
) -> dict[str, list]:
    """End the user's sessions and revoke their grants, codes and tokens, in the caller's
    transaction, with an event per session and per grant. Returns what was revoked."""
    revoked = await store.revoke_account(conn, tenant_id, user_id, keep_interactions=keep_interactions)
    for session_id in revoked["sessions"]:
        await outbox.emit(conn, SessionEnded(user_id=user_id, session_id=session_id, reason=session_reason),
                          aggregate_id=user_id, tenant_id=tenant_id)
    for grant_id, client_id in revoked["grants"]:
        await outbox.emit(conn, TokenRevoked(
            application_id=client_id, user_id=user_id, grant_id=grant_id,
            token_types=["AccessToken", "RefreshToken"], reason=token_reason,
        ), aggregate_id=grant_id, tenant_id=tenant_id)
    return revoked


async def revoke_family(conn: asyncpg.Connection, provider, client_id: str, row, *,
                        reason: str = "revocation") -> None:
    """Delete the token family of `row` (a code's or a refresh token's: the refresh and
    access tokens issued along it) and announce it."""
    if row["family_id"]:
        await store.delete_family(conn, row["family_id"])
    await provider.emit(conn, TokenRevoked(
        application_id=client_id, user_id=row["account_id"], grant_id=row["grant_id"],
        token_types=["AccessToken", "RefreshToken"], reason=reason,
    ), aggregate_id=row["grant_id"])


async def revoke_token(provider, client: Client, token: str, hint: str | None) -> None:
    """RFC 7009 §2.1: revoke the token if it was issued to this client. A refresh token takes
    its whole family (and the family's access tokens) along; invalid tokens are no error (§2.2)."""
    if hint not in (None, "access_token", "refresh_token"):
        raise OAuthError("unsupported_token_type", "token_type_hint must be access_token or refresh_token")
    token_hash = digest(token)
    async with provider.pool.acquire() as conn, conn.transaction():
        refresh = await store.find_refresh_token(conn, provider.tenant_id, token_hash)
        if refresh is not None:
            if refresh["client_id"] != client.id:
                raise OAuthError("unauthorized_client", "this token was not issued to this client")
            await revoke_family(conn, provider, client.id, refresh)
            return
        access = await store.find_access_token(conn, provider.tenant_id, token_hash)
        if access is not None:
            if access["client_id"] != client.id:
                raise OAuthError("unauthorized_client", "this token was not issued to this client")
            await store.delete_access_token(conn, token_hash)
            await provider.emit(conn, TokenRevoked(
                application_id=client.id, user_id=access["account_id"], grant_id=access["grant_id"],
                token_types=["AccessToken"],
            ), aggregate_id=access["grant_id"] or client.id)
