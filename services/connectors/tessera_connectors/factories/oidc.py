"""Generic OpenID Connect (`oidc`, standard: many instances, each with its own target).

Logto's config, plus one Tessera addition: `issuer`, from which missing endpoints and the
JWKS URI are discovered (`<issuer>/.well-known/openid-configuration`) and which the ID
token's `iss` must then equal. The flow is the authorization code flow with PKCE (S256) and
a nonce, both kept in the connector session; the ID token is verified against the issuer's
JWKS with joserfc (signature, `aud` = client id, `exp`/`nbf`/`iat`, `iss` when known).
"""

from __future__ import annotations

import hashlib
import base64
import secrets
from typing import Any, Literal

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tessera_connectors.factories.base import (
    AuthorizationRequest,
    ConnectorError,
    Factory,
    Runtime,
    call_provider,
    json_of,
    load_metadata,
)
from tessera_connectors.factories.oauth2 import code_of, redirect_uri_of, snaked, with_query

# Asymmetric algorithms only: a JWKS holds public keys.
DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class IdTokenVerificationConfig(msgspec.Struct, rename="camel"):
    jwks_uri: str | None = None
    issuer: str | list[str] | None = None
    audience: str | list[str] | None = None
    algorithms: list[str] | None = None
    clock_tolerance: str | int | float | None = None
    max_token_age: str | int | float | None = None
    subject: str | None = None
    typ: str | None = None


class AuthRequestOptionalConfig(msgspec.Struct, rename="camel", omit_defaults=True):
    response_mode: str | None = None
    display: str | None = None
    prompt: str | None = None
    max_age: str | None = None
    ui_locales: str | None = None
    id_token_hint: str | None = None
    login_hint: str | None = None
    acr_values: str | None = None


class OidcConfig(msgspec.Struct, rename="camel"):
    client_id: str
    client_secret: str
    scope: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    id_token_verification_config: IdTokenVerificationConfig | None = None
    issuer: str | None = None  # Tessera: discovery
    response_type: Literal["code"] = "code"
    grant_type: Literal["authorization_code"] = "authorization_code"
    auth_request_optional_config: AuthRequestOptionalConfig | None = None
    custom_config: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.issuer is None:
            missing = [name for name, value in (
                ("authorizationEndpoint", self.authorization_endpoint), ("tokenEndpoint", self.token_endpoint),
                ("idTokenVerificationConfig.jwksUri",
                 self.id_token_verification_config and self.id_token_verification_config.jwks_uri),
            ) if not value]
            if missing:
                raise ValueError(f"{', '.join(missing)} required (or `issuer` to discover them)")
        words = self.scope.replace("+", " ").split()
        if "openid" not in words:  # Logto's scopePostProcessor
            self.scope = " ".join([*words, "openid"])


class Endpoints(msgspec.Struct):
    authorization: str
    token: str
    jwks_uri: str
    issuer: str | None


async def endpoints(rt: Runtime, config: OidcConfig) -> Endpoints:
    verification = config.id_token_verification_config or IdTokenVerificationConfig()
    found: dict[str, Any] = {}
    if config.issuer and not (config.authorization_endpoint and config.token_endpoint and verification.jwks_uri):
        url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = await call_provider(rt, "GET", url)
        found = json_of(response)
        if not isinstance(found, dict) or found.get("issuer") != config.issuer:
            raise ConnectorError("invalid_response", {"message": "the discovery document's issuer is not `issuer`"})
    values = (config.authorization_endpoint or found.get("authorization_endpoint"),
              config.token_endpoint or found.get("token_endpoint"), verification.jwks_uri or found.get("jwks_uri"))
    if not all(isinstance(v, str) for v in values):
        raise ConnectorError("invalid_response", {"message": "the discovery document lacks an endpoint"})
    return Endpoints(*values, issuer=config.issuer)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


async def authorization_uri(rt: Runtime, config: OidcConfig, request: AuthorizationRequest,
                            session: dict[str, Any] | None) -> str:
    if session is None:  # nonce and verifier need a session (Logto: NotImplemented)
        raise ConnectorError("not_implemented", {"message": "Function `setSession()` is not implemented"})
    where = await endpoints(rt, config)
    nonce = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    session.update({"nonce": nonce, "redirectUri": request.redirect_uri, "codeVerifier": verifier})
    optional = msgspec.to_builtins(config.auth_request_optional_config or AuthRequestOptionalConfig())
    parameters = {
        "state": request.state,
        **snaked({"responseType": config.response_type, "scope": config.scope, "clientId": config.client_id,
                  **optional, **(config.custom_config or {})}),
        "nonce": nonce,
        "redirect_uri": request.redirect_uri,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    return with_query(where.authorization, parameters)


def _seconds(value: str | int | float | None) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        digits = "".join(c for c in value[:16] if c.isdigit())
        return int(digits or 0)
    return int(value)


def verify_id_token(id_token: str, keys: KeySet, config: OidcConfig, issuer: str | None) -> dict[str, Any]:
    verification = config.id_token_verification_config or IdTokenVerificationConfig()
    try:
        token = jwt.decode(id_token, keys, algorithms=verification.algorithms or DEFAULT_ALGORITHMS)
        options: dict[str, Any] = {
            "sub": {"essential": True},
            "exp": {"essential": True},
            "aud": {"essential": True, "value": config.client_id},
        }
        expected_issuer = verification.issuer or issuer
        if isinstance(expected_issuer, list):
            options["iss"] = {"essential": True, "values": expected_issuer}
        elif expected_issuer:
            options["iss"] = {"essential": True, "value": expected_issuer}
        if verification.subject:
            options["sub"] = {"essential": True, "value": verification.subject}
        jwt.JWTClaimsRegistry(leeway=_seconds(verification.clock_tolerance), **options).validate(token.claims)
    except JoseError as exc:
        raise ConnectorError("social_invalid_id_token", {"message": f"ID Token validation failed: {exc}"}) from None
    except ValueError as exc:  # not a JWT at all
        raise ConnectorError("social_invalid_id_token", {"message": f"ID Token validation failed: {exc}"}) from None
    return token.claims


async def user_info(rt: Runtime, config: OidcConfig, data: dict[str, Any],
                    session: dict[str, Any] | None) -> dict[str, Any]:
    redirect_uri = redirect_uri_of(session)
    assert session is not None
    code = code_of(data)
    where = await endpoints(rt, config)
    form = snaked({"grantType": config.grant_type, "clientId": config.client_id,
                   "clientSecret": config.client_secret, **(config.custom_config or {}),
                   "code": code, "redirectUri": redirect_uri, "codeVerifier": session.get("codeVerifier")})
    response = await call_provider(rt, "POST", where.token, data=form)
    tokens = json_of(response)
    if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        raise ConnectorError("social_invalid_id_token", {"message": "Cannot find ID Token."})
    jwks_response = await call_provider(rt, "GET", where.jwks_uri)
    try:
        keys = KeySet.import_key_set(json_of(jwks_response))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ConnectorError("invalid_response", {"message": f"the JWKS cannot be read: {exc}"}) from None
    claims = verify_id_token(tokens["id_token"], keys, config, where.issuer)
    nonce = claims.get("nonce")
    if nonce is not None:
        expected = session.get("nonce")
        if not expected:
            raise ConnectorError("general", {"message": "Cannot find `nonce` in session storage."})
        if not isinstance(nonce, str) or not secrets.compare_digest(nonce, expected):
            raise ConnectorError("social_invalid_id_token",
                                 {"message": "ID Token validation failed due to `nonce` mismatch."})
    info: dict[str, Any] = {"id": claims["sub"]}
    if isinstance(claims.get("name"), str):
        info["name"] = claims["name"]
    if isinstance(claims.get("picture"), str):
        info["avatar"] = claims["picture"]
    if claims.get("email_verified") is True and isinstance(claims.get("email"), str):
        info["email"] = claims["email"]
    if claims.get("phone_verified") is True and isinstance(claims.get("phone"), str):
        info["phone"] = claims["phone"]
    return info


def build() -> Factory:
    return Factory("Social", load_metadata("oidc"), OidcConfig,
                   authorization_uri=authorization_uri, user_info=user_info)
