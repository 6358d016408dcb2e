"""The client credentials grant (RFC 6749 §4.4) for machine-to-machine applications, with
resource indicators (RFC 8707 §2.2): `sub` is the client id (logto-behaviour.md §5.6).

With a resource (or a default one) the token is a JWT (RFC 9068) whose scope is requested ∩
granted to the application's roles — one rbac call — and has no database row. Without one it
is an opaque token (stored, for introspection and revocation).
"""

from __future__ import annotations

from tessera_events.identity import TokenIssued
from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import tokens
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.params import Params, check_scope_syntax
from tessera_identity.oidc.provider import Provider


async def issue(provider: Provider, client: Client, params: Params) -> tokens.TokenSet:
    # §4.4.2: grant_type, optional scope; RFC 8707: optional resource.
    requested_scope = params.get("scope")
    check_scope_syntax(requested_scope)
    requested = claim_rules.split_scope(requested_scope)
    indicator = tokens.single_resource(params.all("resource"))
    now = tokens.now_seconds()

    if indicator is None:
        default = await provider.default_resource()
        indicator = default.indicator if default else None
    if indicator is not None:
        allowed = await provider.application_scopes(client.id, indicator, requested=requested)
        if allowed.resource is None:
            raise tokens.invalid_target()
        permitted = set(allowed.scopes)
        # Scopes the application lacks are dropped silently (Logto §5.6), not refused.
        scopes = [s for s in requested if s in permitted]
        access_token, ttl = tokens.jwt_access_token(
            provider, subject=client.id, client_id=client.id, resource=allowed.resource,
            scopes=scopes, now=now,
        )
        token_set = tokens.TokenSet(access_token=access_token, expires_in=ttl, scope=" ".join(scopes),
                                    resource=indicator, kinds=["AccessToken"])
        # Nothing changed in the database for a JWT: its event is batched with others.
        await provider.emit_grouped(_issued(client, token_set), aggregate_id=client.id)
        return token_set

    async with provider.pool.acquire() as conn, conn.transaction():
        # No resource: an opaque token, with no OIDC scope (there is no user to describe).
        scopes = [s for s in requested if s not in claim_rules.OIDC_SCOPE_SET]
        access_token = await tokens.opaque_access_token(
            conn, provider, client_id=client.id, account_id=None, grant_id=None, family_id=None,
            scopes=scopes, ttl=tokens.CLIENT_CREDENTIALS_OPAQUE_TTL, now=now,
        )
        token_set = tokens.TokenSet(access_token=access_token, expires_in=tokens.CLIENT_CREDENTIALS_OPAQUE_TTL,
                                    scope=" ".join(scopes), kinds=["AccessToken"])
        await provider.emit(conn, _issued(client, token_set), aggregate_id=client.id)
    return token_set


def _issued(client: Client, token_set: tokens.TokenSet) -> TokenIssued:
    return TokenIssued(grant_type="client_credentials", application_id=client.id,
                       token_types=["AccessToken"], scope=token_set.scope, resource=token_set.resource)
