"""What the OIDC context adds to the identity service (main.py reads these)."""

from tessera_identity.oidc import routes

ROUTES: list = [*routes.handlers]
RPC_HANDLERS: list = []
ON_STARTUP: list = []
ON_SHUTDOWN: list = []
