"""The authorization code grant at the token endpoint (RFC 6749 §4.1.3 and §4.1.4),
with PKCE (RFC 7636 §4.5, §4.6), resource indicators (RFC 8707 §2.2) and ID tokens
(OIDC Core §3.1.3)."""

from __future__ import annotations

import hmac
import re

from tessera_events.identity import TokenIssued
from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import store, tokens
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest, s256
from tessera_identity.oidc.errors import invalid_grant
from tessera_identity.oidc.keys import from_timestamp
from tessera_identity.oidc.params import Params
from tessera_identity.oidc.provider import Provider
from tessera_identity.oidc.revocation import revoke_family
from tessera_kit.ids import new_id

# RFC 7636 §4.1: code_verifier = 43*128unreserved
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


async def exchange(provider: Provider, client: Client, params: Params) -> tokens.TokenSet:
    # RFC 6749 §4.1.3: grant_type, code, redirect_uri (if it was in the authorization request).
    code = params.require("code")
    redirect_uri = params.get("redirect_uri")
    verifier = params.get("code_verifier")
    resource_param = tokens.single_resource(params.all("resource"))
    now = tokens.now_seconds()
    code_hash = digest(code)

    replayed = False
    async with provider.pool.acquire() as conn:
        async with conn.transaction():
            row = await store.lock_code_with_grant_and_user(conn, provider.tenant_id, code_hash)
            # §4.1.3: the code must be valid, unexpired, and issued to this client.
            if row is None or row["expires_at"].timestamp() <= now or row["client_id"] != client.id:
                raise invalid_grant("authorization code is invalid, expired or not issued to this client")
            if row["consumed_at"] is not None:
                # §4.1.2: a code used twice is refused, and what it issued SHOULD be revoked.
                await revoke_family(conn, provider, client.id, row, reason="authorization_code_replayed")
                replayed = True
            else:
                token_set, event, family_id = await _issue(conn, provider, client, row, redirect_uri,
                                                           verifier, resource_param, now)
                # The code consumed, its tokens' family opened and its event: one statement.
                await provider.outbox.execute_with_events(
                    conn, (store.CONSUME_CODE, store.OPEN_FAMILY), (code_hash, family_id, provider.tenant_id),
                    [(event, row["grant_id"])], tenant_id=provider.tenant_id)
                return token_set
    assert replayed  # committed the revocation above; now refuse
    raise invalid_grant("authorization code has already been used; the tokens it issued are revoked")


async def _issue(conn, provider: Provider, client: Client, row, redirect_uri: str | None,
                 verifier: str | None, resource_param: str | None, now: int):
    # §4.1.3: redirect_uri identical to the one of the authorization request.
    if redirect_uri != row["redirect_uri"]:
        raise invalid_grant("redirect_uri does not match the authorization request")
    # RFC 7636 §4.6: the server hashes the verifier and compares it with the challenge.
    if row["code_challenge"]:
        if verifier is None:
            raise invalid_grant("code_verifier is required (PKCE)")
        if not _VERIFIER.match(verifier):
            raise invalid_grant("code_verifier must be 43-128 unreserved characters (RFC 7636 §4.1)")
        if not _equal(s256(verifier), row["code_challenge"]):
            raise invalid_grant("PKCE verification failed")
    elif verifier is not None:
        raise invalid_grant("code_verifier provided but the authorization request had no code_challenge")

    grant = row["grant_row"]  # read with the code
    if grant is None:
        raise invalid_grant("the grant of this code was revoked")
    user = row["user_row"]
    if user is None or user["is_suspended"]:
        raise invalid_grant("the user of this code may not sign in")

    scopes = claim_rules.split_scope(row["scope"])
    oidc_scopes = [s for s in claim_rules.oidc_part(scopes) if s in grant["oidc_scopes"]]
    scopes = oidc_scopes + claim_rules.resource_part(scopes)
    family_id = new_id()  # its row is written with the code's consumption (exchange)
    auth_time = int(row["auth_time"].timestamp())
    request = tokens.UserTokenRequest(
        client=client, account_id=row["account_id"], grant=_grant_dict(grant), scopes=scopes,
        resource_param=resource_param,
        authorized_resources=set(row["resources"]) | set(_grant_dict(grant)["resource_scopes"]),
        family_id=family_id, session_id=row["session_id"], nonce=row["nonce"], auth_time=auth_time,
    )
    access_token, expires_in, scope, resource = await tokens.user_access_token(conn, provider, request, now)
    token_set = tokens.TokenSet(access_token=access_token, expires_in=expires_in, scope=scope,
                                resource=resource, kinds=["AccessToken"])
    if "openid" in oidc_scopes:
        # OIDC Core §3.1.3.3: an ID token in the token response.
        token_set.id_token = tokens.id_token(provider, client, user, oidc_scopes, nonce=row["nonce"],
                                             auth_time=auth_time, access_token=access_token, now=now)
        token_set.kinds.append("IdToken")
    if tokens.issues_refresh_token(client, oidc_scopes):
        token_set.refresh_token = await tokens.refresh_token(
            conn, provider, client, family_id=family_id, grant_id=grant["id"], account_id=row["account_id"],
            session_id=row["session_id"], scope=" ".join(scopes), nonce=row["nonce"],
            auth_time=row["auth_time"], family_created_at=from_timestamp(now), now=now,
        )
        token_set.kinds.append("RefreshToken")
    event = TokenIssued(
        grant_type="authorization_code", application_id=client.id, user_id=row["account_id"],
        session_id=row["session_id"], token_types=list(token_set.kinds), scope=token_set.scope,
        resource=resource, grant_id=grant["id"], interaction_id=row["interaction_id"],
    )
    return token_set, event, family_id


def _grant_dict(grant) -> dict:
    return {"id": grant["id"], "oidc_scopes": list(grant["oidc_scopes"]),
            "resource_scopes": dict(grant["resource_scopes"] or {})}


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
