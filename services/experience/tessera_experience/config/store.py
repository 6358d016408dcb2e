"""SQL for the sign-in experience, custom phrases and configs (this schema only)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_experience.config.domain import SIE_ID

# API field -> column, in the order Logto answers them.
SIE_COLUMNS = {
    "tenantId": "tenant_id",
    "id": "id",
    "color": "color",
    "branding": "branding",
    "languageInfo": "language_info",
    "termsOfUseUrl": "terms_of_use_url",
    "privacyPolicyUrl": "privacy_policy_url",
    "signIn": "sign_in",
    "signUp": "sign_up",
    "socialSignInConnectorTargets": "social_sign_in_connector_targets",
    "signInMode": "sign_in_mode",
    "customCss": "custom_css",
    "customContent": "custom_content",
}
_SELECT_SIE = ", ".join(f'{column} AS "{field}"' for field, column in SIE_COLUMNS.items())

Executor = asyncpg.Connection | asyncpg.Pool
# The tenant's ($1) sign-in experience as a JSON object with the API's field names: a subquery
# for a statement that reads it beside something else.
SIE_SELECT_JSON = (
    f"SELECT to_jsonb(s) FROM (SELECT {_SELECT_SIE} FROM sign_in_experiences"
    f" WHERE tenant_id = $1 AND id = '{SIE_ID}') s"
)


async def seed_sign_in_experience(conn: Executor, sie: dict[str, Any]) -> None:
    columns = list(SIE_COLUMNS.values())
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO sign_in_experiences ({', '.join(columns)}) VALUES ({placeholders})"
        " ON CONFLICT (tenant_id, id) DO NOTHING",
        *[sie[field] for field in SIE_COLUMNS],
    )


async def find_sign_in_experience(conn: Executor, tenant_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_SELECT_SIE} FROM sign_in_experiences WHERE tenant_id = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id, SIE_ID,
    )
    return dict(row) if row else None


async def update_sign_in_experience(conn: asyncpg.Connection, tenant_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
    if not values:
        return await find_sign_in_experience(conn, tenant_id)
    fields = list(values)
    assignments = ", ".join(f"{SIE_COLUMNS[field]} = ${i}" for i, field in enumerate(fields, start=3))
    row = await conn.fetchrow(
        f"UPDATE sign_in_experiences SET {assignments} WHERE tenant_id = $1 AND id = $2 RETURNING {_SELECT_SIE}",
        tenant_id, SIE_ID, *[values[f] for f in fields],
    )
    return dict(row) if row else None


# ------------------------------------------------------------------ custom phrases

_PHRASE = 'tenant_id AS "tenantId", id, language_tag AS "languageTag", translation'


async def list_custom_phrases(conn: Executor, tenant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_PHRASE} FROM custom_phrases WHERE tenant_id = $1 ORDER BY language_tag", tenant_id
    )
    return [dict(r) for r in rows]


async def custom_language_tags(conn: Executor, tenant_id: str) -> list[str]:
    rows = await conn.fetch("SELECT language_tag FROM custom_phrases WHERE tenant_id = $1", tenant_id)
    return [r["language_tag"] for r in rows]


async def find_custom_phrase(conn: Executor, tenant_id: str, language_tag: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_PHRASE} FROM custom_phrases WHERE tenant_id = $1 AND language_tag = $2", tenant_id, language_tag
    )
    return dict(row) if row else None


async def upsert_custom_phrase(conn: asyncpg.Connection, tenant_id: str, new_id: str, language_tag: str,
                               translation: dict[str, Any]) -> dict[str, Any]:
    """An existing row keeps its id; its translation is replaced, not merged."""
    row = await conn.fetchrow(
        "INSERT INTO custom_phrases (tenant_id, id, language_tag, translation) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant_id, language_tag) DO UPDATE SET translation = excluded.translation"
        f" RETURNING {_PHRASE}",
        tenant_id, new_id, language_tag, translation,
    )
    return dict(row)


async def delete_custom_phrase(conn: asyncpg.Connection, tenant_id: str, language_tag: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM custom_phrases WHERE tenant_id = $1 AND language_tag = $2 RETURNING true", tenant_id, language_tag
    )
    return bool(deleted)


# ------------------------------------------------------------------ configs


async def seed_config(conn: Executor, tenant_id: str, key: str, value: Any) -> None:
    await conn.execute(
        "INSERT INTO configs (tenant_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        tenant_id, key, value,
    )


async def find_config(conn: Executor, tenant_id: str, key: str, *, lock: bool = False) -> Any | None:
    return await conn.fetchval(
        "SELECT value FROM configs WHERE tenant_id = $1 AND key = $2" + (" FOR UPDATE" if lock else ""),
        tenant_id, key,
    )


async def update_config(conn: asyncpg.Connection, tenant_id: str, key: str, value: Any) -> None:
    await conn.execute("UPDATE configs SET value = $3 WHERE tenant_id = $1 AND key = $2", tenant_id, key, value)
