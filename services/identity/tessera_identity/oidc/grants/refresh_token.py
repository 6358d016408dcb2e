"""The refresh token grant (RFC 6749 §6), with rotation and replay detection
(OAuth 2.0 Security BCP §4.14.2) and ID tokens on refresh (OIDC Core §12.2).

Rotation: a rotated token is consumed; a consumed token is still accepted for
`oidc_refresh_reuse_seconds` (3 s, Logto's refreshTokenReuseInterval) so that two concurrent
refreshes of one token both succeed — with the SAME successor (idempotent rotation: the
successor is derived from the token, see crypto.successor_token), so the family stays one
chain. Presented later, it is a replay: every token of its family (all refresh and opaque
access tokens descending from the same code exchange) is revoked.

Rotation and revocation serialise on the family's row (locked before any token row): a
refresh never commits a successor that a concurrent revocation misses.
"""

from __future__ import annotations

from tessera_events.identity import TokenIssued
from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import store, tokens
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest, successor_token
from tessera_identity.oidc.errors import OAuthError, invalid_grant
from tessera_identity.oidc.params import Params, check_scope_syntax
from tessera_identity.oidc.provider import Provider
from tessera_identity.oidc.revocation import revoke_family


async def refresh(provider: Provider, client: Client, params: Params) -> tokens.TokenSet:
    presented = params.require("refresh_token")
    requested_scope = params.get("scope")
    check_scope_syntax(requested_scope)
    resource_param = tokens.single_resource(params.all("resource"))
    now = tokens.now_seconds()
    token_hash = digest(presented)

    replayed = False
    async with provider.pool.acquire() as conn:
        async with conn.transaction():
            # The family first (as revocation does), then the token row: see the module doc.
            family = await store.lock_family_of_refresh_token(conn, provider.tenant_id, token_hash)
            row = family and await store.lock_refresh_token(conn, provider.tenant_id, token_hash)
            # §6: the refresh token must be valid and issued to the authenticated client.
            if (not row or family["revoked_at"] is not None or row["expires_at"].timestamp() <= now
                    or row["client_id"] != client.id):
                raise invalid_grant("refresh token is invalid, expired or not issued to this client")
            if row["consumed_at"] is not None and row["consumed_seconds_ago"] > provider.settings.oidc_refresh_reuse_seconds:
                # Security BCP §4.14.2: a rotated token used again means it leaked; revoke the family.
                await revoke_family(conn, provider, client.id, row, reason="refresh_token_replayed")
                replayed = True
            else:
                token_set, event = await _issue(conn, provider, client, row, token_hash, presented,
                                                requested_scope, resource_param, now)
                await provider.emit(conn, event, aggregate_id=row["grant_id"])
                return token_set
    assert replayed  # the revocation is committed; now refuse
    raise invalid_grant("refresh token has already been used; its token family is revoked")


async def _issue(conn, provider: Provider, client: Client, row, token_hash: bytes, presented: str,
                 requested_scope: str | None, resource_param: str | None, now: int):
    grant = await store.find_grant(conn, provider.tenant_id, row["grant_id"])
    if grant is None:
        raise invalid_grant("the grant of this refresh token was revoked")
    user = await store.find_user(conn, provider.tenant_id, row["account_id"])
    if user is None or user["is_suspended"]:
        # A suspended user's refresh tokens stop working (Logto's bug §11.1 fixed).
        raise invalid_grant("the user of this refresh token may not sign in")

    original = claim_rules.split_scope(row["scope"])
    if requested_scope is not None:
        # §6: the requested scope MUST NOT include any scope not originally granted.
        scopes = claim_rules.split_scope(requested_scope)
        extra = [s for s in scopes if s not in original]
        if extra:
            raise OAuthError("invalid_scope", f"refresh token lacks scope(s): {' '.join(extra)}")
    else:
        scopes = original
    oidc_scopes = [s for s in claim_rules.oidc_part(scopes) if s in grant["oidc_scopes"]]
    scopes = oidc_scopes + claim_rules.resource_part(scopes)
    resource_scopes = dict(grant["resource_scopes"] or {})
    auth_time = int(row["auth_time"].timestamp())
    request = tokens.UserTokenRequest(
        client=client, account_id=row["account_id"],
        grant={"id": grant["id"], "oidc_scopes": list(grant["oidc_scopes"]), "resource_scopes": resource_scopes},
        scopes=scopes, resource_param=resource_param, authorized_resources=set(resource_scopes),
        family_id=row["family_id"], session_id=row["session_id"], nonce=row["nonce"], auth_time=auth_time,
    )
    access_token, expires_in, scope, resource = await tokens.user_access_token(conn, provider, request, now)
    token_set = tokens.TokenSet(access_token=access_token, expires_in=expires_in, scope=scope,
                                resource=resource, kinds=["AccessToken"])
    if "openid" in oidc_scopes:
        # OIDC Core §12.2: the ID token of a refresh keeps sub, auth_time; nonce is not repeated.
        token_set.id_token = tokens.id_token(provider, client, user, oidc_scopes, nonce=None,
                                             auth_time=auth_time, access_token=access_token, now=now)
        token_set.kinds.append("IdToken")

    rotate = tokens.should_rotate(
        client, issued_at=row["created_at"].timestamp(), expires_at=row["expires_at"].timestamp(),
        family_created_at=row["family_created_at"].timestamp(), now=now,
    )
    successor = successor_token(provider.refresh_successor_key, presented)
    if row["consumed_at"] is not None:
        # A reuse within the interval: the successor the first use issued, not a second chain.
        if await store.find_refresh_token(conn, provider.tenant_id, digest(successor)) is None:
            raise invalid_grant("refresh token has already been used")
        token_set.refresh_token = successor
    elif rotate:
        await store.mark_refresh_token_consumed(conn, token_hash)
        token_set.refresh_token = await tokens.refresh_token(
            conn, provider, client, family_id=row["family_id"], grant_id=grant["id"],
            account_id=row["account_id"], session_id=row["session_id"], scope=row["scope"],
            nonce=row["nonce"], auth_time=row["auth_time"], family_created_at=row["family_created_at"],
            now=now, token=successor,
        )
    else:
        token_set.refresh_token = presented  # not rotated: the same token stays in use
    token_set.kinds.append("RefreshToken")
    event = TokenIssued(
        grant_type="refresh_token", application_id=client.id, user_id=row["account_id"],
        session_id=row["session_id"], token_types=list(token_set.kinds), scope=token_set.scope,
        resource=resource, grant_id=grant["id"],
    )
    return token_set, event
