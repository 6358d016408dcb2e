"""What can happen to a user, for the HTTP routes and the rpc handlers alike.

Each change is one transaction: the row, the revocation of OIDC state where it applies,
and the event in the outbox. Passwords are hashed before the transaction starts, so no
connection waits on argon2.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_events.contracts.connectors import INTERACTION_USER_INFO, InteractionUserInfoRequest
from tessera_events.identity import (
    UserCreated,
    UserDeleted,
    UserIdentityLinked,
    UserIdentityUnlinked,
    UserPasswordChanged,
    UserSessionsRevoked,
    UserSuspended,
    UserUnsuspended,
    UserUpdated,
)
from tessera_identity import passwords
from tessera_identity.oidc.revocation import revoke_everything_for_user
from tessera_identity.users import lockout, store
from tessera_identity.users.domain import changed_fields, snapshot
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError
from tessera_kit.ids import new_user_id
from tessera_kit.logging import get_logger
from tessera_kit.context import current_tenant

log = get_logger(__name__)

# Sign-ins are announced by the experience service; a new `last_sign_in_at` alone is no
# profile change worth an `identity.user.updated`.
QUIET_FIELDS = frozenset({"last_sign_in_at"})


def user_not_found() -> RequestError:
    # Logto's user queries are "select one": a missing user is `entity.not_found` (§1.3).
    return RequestError("entity.not_found", 404)


def _unique_violation(exc: asyncpg.UniqueViolationError) -> RequestError:
    code = store.UNIQUE_INDEX_CODES.get(exc.constraint_name or "")
    if code is None:
        raise exc
    return RequestError(code, 422)


async def _emit(ctx: ServiceContext, conn: asyncpg.Connection, event, user_id: str) -> None:
    await ctx.outbox.emit(conn, event, aggregate_id=user_id, tenant_id=current_tenant())


async def get_user(ctx: ServiceContext, user_id: str) -> asyncpg.Record:
    row = await store.find_user(ctx.pool, current_tenant(), user_id)
    if row is None:
        raise user_not_found()
    return row


async def create_user(
    ctx: ServiceContext, values: dict[str, Any], *, password: str | None = None,
    password_digest: tuple[str, str] | None = None, idempotency_key: str | None = None,
) -> asyncpg.Record:
    """Insert a user. `values` are columns; `password` is hashed here; `password_digest` is
    an imported (hash, method). Identifier collisions are 422 in Logto's order. A known
    `idempotency_key` answers the user it created, unchanged and unannounced."""
    tenant = current_tenant()
    values = dict(values)
    if password:
        values["password_encrypted"] = await passwords.hash_password(password)
        values["password_encryption_method"] = passwords.ARGON2ID
    elif password_digest:
        values["password_encrypted"], values["password_encryption_method"] = password_digest
    async with ctx.pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            # Serialises the calls with this key: the second waits, then finds the first's user.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('create-user:' || $1 || ':' || $2))",
                               tenant, idempotency_key)
            created_before = await store.user_created_with_key(conn, tenant, idempotency_key)
            if created_before is not None:
                return created_before
        await _check_identifiers_free(conn, tenant, values, None)
        for target, identity in (values.get("identities") or {}).items():
            if await store.find_user_by_identity(conn, tenant, target, identity["userId"]):
                raise RequestError("user.identity_already_in_use", 422)
        row = None
        while row is None:  # None: the 12-character id was taken (about never); take another
            try:
                row = await store.insert_user(conn, tenant, new_user_id(), values)
            except asyncpg.UniqueViolationError as exc:  # a concurrent request took an identifier
                raise _unique_violation(exc) from None
        if idempotency_key is not None:
            await store.remember_creation_key(conn, tenant, idempotency_key, row["id"])
        await _emit(ctx, conn, UserCreated(
            user=snapshot(row), has_password=row["has_password"], application_id=row["application_id"],
            identity_targets=sorted(row["identities"]),
        ), row["id"])
    return row


async def _check_identifiers_free(conn, tenant: str, values: dict[str, Any], user_id: str | None) -> None:
    username, email, phone = values.get("username"), values.get("primary_email"), values.get("primary_phone")
    if username or email or phone:
        code = await store.identifier_in_use(conn, tenant, username=username, email=email, phone=phone,
                                             exclude_user_id=user_id)
        if code:
            raise RequestError(code, 422)


async def update_user(
    ctx: ServiceContext, user_id: str, values: dict[str, Any], *, password: str | None = None,
    password_digest: tuple[str, str] | None = None, merge_custom_data: bool = False, merge_identities: bool = False,
) -> asyncpg.Record:
    """Change profile columns (and the password, identities) of an existing user, announcing
    what changed: `updated` for profile fields, `password_changed`, `identity_linked`. A new
    password revokes the user's sessions, grants and tokens (`sessions_revoked`)."""
    tenant = current_tenant()
    values = dict(values)
    if password:
        values["password_encrypted"] = await passwords.hash_password(password)
        values["password_encryption_method"] = passwords.ARGON2ID
    elif password_digest:  # hashed earlier (HASH_PASSWORD), e.g. while an interaction held it
        values["password_encrypted"], values["password_encryption_method"] = password_digest
    new_password = "password_encrypted" in values
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await store.find_user_for_update(conn, tenant, user_id)
        if before is None:
            raise user_not_found()
        await _check_identifiers_free(conn, tenant, values, user_id)
        if merge_custom_data and "custom_data" in values:
            values["custom_data"] = {**before["custom_data"], **values["custom_data"]}
        linked: list[tuple[str, str]] = []
        if "identities" in values:
            for target, identity in values["identities"].items():
                if await store.find_user_by_identity(conn, tenant, target, identity["userId"], user_id):
                    raise RequestError("user.identity_already_in_use", 422)
                if (before["identities"].get(target) or {}).get("userId") != identity["userId"]:
                    linked.append((target, identity["userId"]))
            if merge_identities:
                values["identities"] = {**before["identities"], **values["identities"]}
        try:
            after = await store.update_user(conn, tenant, user_id, values)
        except asyncpg.UniqueViolationError as exc:
            raise _unique_violation(exc) from None
        changed = changed_fields(before, after)
        if set(changed) - QUIET_FIELDS:
            await _emit(ctx, conn, UserUpdated(user=snapshot(after), changed=changed), user_id)
        if new_password:
            await _emit(ctx, conn, UserPasswordChanged(user_id=user_id), user_id)
            # A new password ends what the old one opened (RFC 9700 §4.14.2; ASVS V3.3.3),
            # in this transaction: no refresh, userinfo or silent sign-in outlives it. An
            # interaction under way (a sign-in setting its password) goes on after a login.
            revoked = await revoke_everything_for_user(
                conn, ctx.outbox, tenant, user_id, session_reason="password_changed",
                token_reason="password_changed", keep_interactions=True)
            if revoked["sessions"] or revoked["grants"]:
                await _emit(ctx, conn, UserSessionsRevoked(
                    user_id=user_id, reason="password_changed", session_ids=revoked["sessions"],
                    grant_ids=[grant_id for grant_id, _ in revoked["grants"]]), user_id)
        for target, identity_user_id in linked:
            await _emit(ctx, conn, UserIdentityLinked(user_id=user_id, target=target,
                                                      identity_user_id=identity_user_id), user_id)
    return after


async def merge_custom_data(ctx: ServiceContext, user_id: str, custom_data: dict[str, Any]) -> asyncpg.Record:
    return await update_user(ctx, user_id, {"custom_data": custom_data}, merge_custom_data=True)


async def set_suspended(ctx: ServiceContext, user_id: str, is_suspended: bool) -> asyncpg.Record:
    """Suspension revokes the user's sessions, grants and tokens in the same transaction
    (Logto meant to, but deleted nothing: §11.1)."""
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await store.find_user_for_update(conn, tenant, user_id)
        if before is None:
            raise user_not_found()
        after = await store.update_user(conn, tenant, user_id, {"is_suspended": is_suspended})
        if is_suspended:
            await revoke_everything_for_user(conn, ctx.outbox, tenant, user_id)
        if before["is_suspended"] != is_suspended:
            event = UserSuspended(user_id=user_id) if is_suspended else UserUnsuspended(user_id=user_id)
            await _emit(ctx, conn, event, user_id)
    return after


async def delete_user(ctx: ServiceContext, user_id: str) -> None:
    """Remove the user, their OIDC state and their lockout counters; announce it."""
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.find_user_for_update(conn, tenant, user_id) is None:
            raise user_not_found()
        await revoke_everything_for_user(conn, ctx.outbox, tenant, user_id)
        removed = await store.delete_user(conn, tenant, user_id)
        keys = [lockout.identifier_key("id", user_id)] + [
            lockout.identifier_key(kind, removed[column])
            for kind, column in (("username", "username"), ("email", "primary_email"), ("phone", "primary_phone"))
            if removed[column]
        ]
        await lockout.forget(conn, tenant, keys)
        await _emit(ctx, conn, UserDeleted(user_id=user_id), user_id)


async def unlink_identity(ctx: ServiceContext, user_id: str, target: str) -> asyncpg.Record:
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await store.find_user_for_update(conn, tenant, user_id)
        if before is None:
            raise user_not_found()
        if target not in before["identities"]:
            raise RequestError("user.identity_not_exist", 404)
        identities = {k: v for k, v in before["identities"].items() if k != target}
        after = await store.update_user(conn, tenant, user_id, {"identities": identities})
        await _emit(ctx, conn, UserIdentityUnlinked(user_id=user_id, target=target), user_id)
    return after


async def link_social_identity(ctx: ServiceContext, user_id: str, connector_id: str,
                               connector_data: dict[str, Any]) -> asyncpg.Record:
    """POST /users/:userId/identities: the connectors service runs the connector's
    getUserInfo (as Logto does here: without an interaction, so without a connector session);
    the identity is stored under the connector's target."""
    await get_user(ctx, user_id)
    info = await ctx.call(INTERACTION_USER_INFO, InteractionUserInfoRequest(
        connector_id=connector_id, connector_data=connector_data, connector_session=None,
        interaction_id="", tenant_id=current_tenant(),
    ))
    identity_user_id = str(info.user_info.get("id", ""))
    if not identity_user_id:
        raise RequestError("connector.invalid_response", 400)  # Logto §7.4: a response without a user id
    identity = {"userId": identity_user_id, "details": info.user_info}
    return await update_user(ctx, user_id, {"identities": {info.target: identity}}, merge_identities=True)


# ---------------------------------------------------------------- passwords


async def check_password(ctx: ServiceContext, row: asyncpg.Record | None, password: str,
                         lockout_key: str | None, *, slot_taken: bool | None = None) -> bool:
    """Verify `password` against the user's hash (a dummy one if there is no user or hash,
    so every answer takes as long). With a `lockout_key`, the attempt counts toward the
    identifier lockout and is refused outright when the identifier is locked. `slot_taken`:
    whether the caller already took the attempt's slot (lockout.take_slot_statement)."""
    tenant = current_tenant()
    if lockout_key:
        await lockout.take_attempt(ctx.pool, tenant, lockout_key, slot_taken=slot_taken)
    encoded = row["password_encrypted"] if row else None
    method = row["password_encryption_method"] if row else None
    matched = False
    try:
        matched = await passwords.verify_password(encoded, method, password)
    finally:
        if lockout_key:
            await lockout.settle(ctx.pool, tenant, lockout_key, matched)
    if matched and passwords.needs_rehash(encoded, method):
        await _rehash(ctx, row["id"], encoded, password)
    return matched


async def _rehash(ctx: ServiceContext, user_id: str, old_hash: str, password: str) -> None:
    """Bring an imported (argon2i) or older hash to today's parameters. The password is the
    same, so nothing is announced; a concurrent password change wins."""
    new_hash = await passwords.hash_password(password)
    replaced = await store.replace_password_hash(ctx.pool, current_tenant(), user_id, old_hash,
                                                 new_hash, passwords.ARGON2ID)
    if replaced:
        log.info("password hash upgraded", user_id=user_id)


def invalid_credentials() -> RequestError:
    return RequestError("session.invalid_credentials", 422)
