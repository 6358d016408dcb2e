"""OAuth 2.0 / OIDC error answers: `{error, error_description}` (RFC 6749 §5.2), not Logto's
`{code, message}` of the Management API — RPs parse these by their RFC names."""

from __future__ import annotations

from typing import Any

from litestar import Response

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def response(self, extra_headers: dict[str, str] | None = None) -> Response:
        return Response(
            self.body(),
            status_code=self.status,
            headers={**NO_STORE, **self.headers, **(extra_headers or {})},
            media_type="application/json",
        )


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str = "client authentication failed", *, basic: bool = False) -> OAuthError:
    # RFC 6749 §5.2: 401, and a WWW-Authenticate matching the scheme the client tried.
    headers = {"www-authenticate": 'Basic realm="oidc"'} if basic else {}
    return OAuthError("invalid_client", description, status=401, headers=headers)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_token(description: str) -> OAuthError:
    # RFC 6750 §3.1
    return OAuthError(
        "invalid_token", description, status=401,
        headers={"www-authenticate": f'Bearer realm="oidc", error="invalid_token", error_description="{description}"'},
    )


class AuthorizationError(OAuthError):
    """An error of the authorization endpoint that goes back to the client's redirect URI
    (RFC 6749 §4.1.2.1), as opposed to a plain OAuthError that must not be redirected."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(error, description)
