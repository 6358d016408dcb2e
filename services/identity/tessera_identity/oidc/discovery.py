"""`/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).

Built once at start-up. Everything listed here works; what does not (implicit and hybrid
flows, request objects, the claims parameter, dynamic registration, `plain` PKCE) is absent.
"""

from __future__ import annotations

from typing import Any

from tessera_identity.oidc.claims import CLAIMS_SUPPORTED, OIDC_SCOPES

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def discovery_document(issuer: str, signing_algs: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/me",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/session/end",
        "revocation_endpoint": f"{issuer}/token/revocation",
        "introspection_endpoint": f"{issuer}/token/introspection",
        "scopes_supported": list(OIDC_SCOPES),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        # RFC 9207: the authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": True,
    }
