"""The OpenID Provider under `/oidc`."""

handlers: list = []
