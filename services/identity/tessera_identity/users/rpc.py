"""What identity answers about users over rpc (contracts in tessera_events.contracts.identity)."""

from __future__ import annotations

from typing import Any

import msgspec

from tessera_events.epoch_ms import LATEST_MS
from tessera_events.contracts.identity import (
    CREATE_USER,
    FIND_USER,
    HASH_PASSWORD,
    UPDATE_USER,
    USER_COUNTS,
    VERIFY_PASSWORD,
    CreateUserRequest,
    FindUserRequest,
    HashPasswordRequest,
    PasswordHash,
    UpdateUserRequest,
    UserCounts,
    UserCountsRequest,
    UserInfo,
    VerifyPasswordRequest,
)
from tessera_identity import passwords
from tessera_identity.ratelimits import rate_limits
from tessera_identity.users import lockout, service, store
from tessera_identity.users.domain import AVATAR_MAX, IDENTIFIER_MAX, NAME_MAX, identities_json, user_info
from tessera_identity.validation import EMAIL, PASSWORD, PHONE, USERNAME, is_web_url
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input
from tessera_kit.regexes import matches
from tessera_kit.rpc import RpcHandler
from tessera_kit.context import current_tenant

_RULES = {
    "username": (USERNAME, IDENTIFIER_MAX),
    "primary_email": (EMAIL, IDENTIFIER_MAX),
    "primary_phone": (PHONE, IDENTIFIER_MAX),
    "name": (None, NAME_MAX),
    "avatar": (None, AVATAR_MAX),
}


def _check_fields(values: dict[str, Any], password: str | None) -> None:
    """The same rules as the management API: identifiers match Logto's regexes (or are
    empty), new passwords its password rule."""
    issues = []
    for field, (pattern, max_length) in _RULES.items():
        value = values.get(field)
        if not isinstance(value, str) or value == "":
            continue
        if len(value) > max_length:
            issues.append(ValidationIssue(field, "too_big", f"String must contain at most {max_length} character(s)"))
        elif pattern is not None and not matches(pattern, value, max_length):
            issues.append(ValidationIssue(field, "invalid_string", "Invalid"))
        elif field == "avatar" and not is_web_url(value):
            issues.append(ValidationIssue(field, "invalid_string", "Invalid url"))
    if password is not None and not matches(PASSWORD, password):
        issues.append(ValidationIssue("password", "invalid_string", "Invalid"))
    if issues:
        raise invalid_input("body", issues)


def _same_tenant(ctx: ServiceContext, tenant_id: str) -> None:
    if tenant_id not in ctx.settings.tenants:
        raise RequestError("request.invalid_input", 400, details=f"tenant {tenant_id!r} is not served here")


async def find_user(ctx: ServiceContext, request: FindUserRequest) -> UserInfo | None:
    _same_tenant(ctx, request.tenant_id)
    tenant = current_tenant()
    if request.identity_target and request.identity_user_id:
        row = await store.find_user_by_identity(ctx.pool, tenant, request.identity_target,
                                                request.identity_user_id)
    elif request.by and request.value:
        row = await store.find_user_by(ctx.pool, tenant, request.by, request.value)
    elif request.idempotency_key:
        row = await store.user_created_with_key(ctx.pool, tenant, request.idempotency_key)
    else:
        raise RequestError("request.invalid_input", 400, details="give `by` and `value`,"
                           " `identity_target` and `identity_user_id`, or `idempotency_key`")
    return user_info(row) if row else None


async def verify_password(ctx: ServiceContext, request: VerifyPasswordRequest) -> UserInfo:
    _same_tenant(ctx, request.tenant_id)
    row = None
    if request.value:
        row = await store.find_user_by(ctx.pool, current_tenant(), request.by, request.value,
                                       with_secret=True)
    # One counter per account, whichever identifier names it (username, e-mail and phone
    # would otherwise each give the full allowance); an unknown identifier counts for itself.
    key = None
    slot_taken: bool | None = None
    if request.count_failures:
        key = lockout.identifier_key("id", row["id"]) if row else lockout.identifier_key(request.by, request.value)
        if request.client_ip:
            # The limits and the lockout slot in one statement (the slot only if the limits admit it).
            slot_taken = bool(await rate_limits(ctx).count_sign_in(
                request.client_ip[:64], key, then=lockout.take_slot_statement(current_tenant(), key)))
    if not await service.check_password(ctx, row, request.password, key, slot_taken=slot_taken):
        raise service.invalid_credentials()
    if row["is_suspended"] and request.reject_suspended:
        raise RequestError("user.suspended", 401)
    return user_info(row)


def _imported_digest(digest: str | None, algorithm: str | None) -> tuple[str, str] | None:
    """(PHC string, method) of a hash given instead of a password, if it is one we verify."""
    if not digest:
        return None
    method = algorithm or passwords.method_of(digest)
    if method not in passwords.SUPPORTED_METHODS or passwords.method_of(digest) != method:
        raise RequestError("password.unsupported_encryption_method", 400, name=str(method))
    return digest, method


async def create_user(ctx: ServiceContext, request: CreateUserRequest) -> UserInfo:
    _same_tenant(ctx, request.tenant_id)
    values: dict[str, Any] = {
        "username": request.username, "primary_email": request.primary_email,
        "primary_phone": request.primary_phone, "name": request.name, "avatar": request.avatar,
        "custom_data": request.custom_data, "identities": identities_json(request.identities),
        "application_id": request.application_id,
        "last_sign_in_at": store.from_ms_or_none(request.last_sign_in_at),
    }
    _check_fields(values, request.password)
    digest = _imported_digest(request.password_digest, request.password_algorithm)
    row = await service.create_user(ctx, {k: v for k, v in values.items() if v is not None},
                                    password=request.password, password_digest=digest,
                                    idempotency_key=request.idempotency_key)
    return user_info(row)


async def update_user(ctx: ServiceContext, request: UpdateUserRequest) -> UserInfo:
    _same_tenant(ctx, request.tenant_id)
    values: dict[str, Any] = {}
    for field in ("username", "primary_email", "primary_phone", "name", "avatar", "application_id",
                  "custom_data"):
        value = getattr(request, field)
        if value is not msgspec.UNSET:
            values[field] = value
    if request.identities is not msgspec.UNSET:
        values["identities"] = identities_json(request.identities)
    if request.last_sign_in_at is not msgspec.UNSET:
        values["last_sign_in_at"] = store.from_ms_or_none(request.last_sign_in_at)
    password = None if request.password is msgspec.UNSET else request.password
    _check_fields(values, password)
    digest = None if request.password_digest is msgspec.UNSET else _imported_digest(
        request.password_digest, None if request.password_algorithm is msgspec.UNSET else request.password_algorithm)
    row = await service.update_user(ctx, request.user_id, values, password=password, password_digest=digest,
                                    merge_custom_data=True, merge_identities=True)
    return user_info(row)


async def hash_password(ctx: ServiceContext, request: HashPasswordRequest) -> PasswordHash:
    """A new password's hash, so that whoever must hold it until it is used holds no clear text."""
    _same_tenant(ctx, request.tenant_id)
    _check_fields({}, request.password)
    same = False
    if request.compare_with_user_id:
        row = await store.find_user_by(ctx.pool, current_tenant(), "id", request.compare_with_user_id,
                                       with_secret=True)
        same = row is not None and await passwords.verify_password(
            row["password_encrypted"], row["password_encryption_method"], request.password)
    return PasswordHash(digest=await passwords.hash_password(request.password), algorithm=passwords.ARGON2ID,
                        same_as_current=same)

async def user_counts(ctx: ServiceContext, request: UserCountsRequest) -> UserCounts:
    _same_tenant(ctx, request.tenant_id)
    if len(request.windows) > 8 or not all(0 <= since <= until <= LATEST_MS for since, until in request.windows):
        raise RequestError("request.invalid_input", 400, details="at most 8 windows, 0 <= since <= until <= year 9999")
    total, created = await store.count_users(ctx.pool, current_tenant(), request.windows)
    return UserCounts(total=total, created=created)


HANDLERS = [
    RpcHandler(FIND_USER, find_user, with_context=True),
    RpcHandler(VERIFY_PASSWORD, verify_password, with_context=True),
    RpcHandler(CREATE_USER, create_user, with_context=True),
    RpcHandler(UPDATE_USER, update_user, with_context=True),
    RpcHandler(HASH_PASSWORD, hash_password, with_context=True),
    RpcHandler(USER_COUNTS, user_counts, with_context=True),
]
