"""The connector library: loads instances (decrypting their configs), applies Logto's
rules on create, update and delete with their events, and runs connectors (send a message,
build an authorization URI, read user info) with their errors mapped as Logto §7.4.
Shared by the HTTP routes and the rpc handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import msgspec
from cryptography.exceptions import InvalidTag

from tessera_connectors import store
from tessera_connectors.domain import (
    CreateConnector,
    Instance,
    UpdateConnector,
    check_integrity,
    clash_error,
    clean_deep,
    mask_recipient,
    override_of,
    snapshot,
    social_clash,
)
from tessera_connectors.factories import DEMO_FACTORY_IDS, installed
from tessera_connectors.factories.base import (
    AuthorizationRequest,
    ConnectorError,
    Factory,
    Message,
    Runtime,
    to_request_error,
)
from tessera_connectors.settings import ConnectorsSettings, load
from tessera_events.connectors import (
    ConnectorCreated,
    ConnectorDeleted,
    ConnectorSnapshot,
    ConnectorUpdated,
    MessageFailed,
    MessageSent,
)
from tessera_kit.app import ServiceContext
from tessera_kit.crypto import AtRestEncryption
from tessera_kit.errors import RequestError
from tessera_kit.ids import new_id
from tessera_kit.logging import get_logger
from tessera_kit.outbox import GroupCommitEmitter
from tessera_kit.context import current_tenant

log = get_logger(__name__)
EXTRA = "connectors"
# The HKDF label of connector configs at rest (identity's signing keys have their own).
CONFIG_KEY_LABEL = "tessera connector configs at rest"


@dataclass
class Library:
    settings: ConnectorsSettings
    factories: dict[str, Factory]
    encryption: AtRestEncryption
    runtime: Runtime
    messages: GroupCommitEmitter


def library(ctx: ServiceContext) -> Library:
    return ctx.extras[EXTRA]


async def start(ctx: ServiceContext, settings: ConnectorsSettings | None = None) -> None:
    settings = settings or load()
    ctx.extras[EXTRA] = Library(
        settings=settings,
        factories=installed(settings),
        encryption=AtRestEncryption(settings.effective_key_encryption_key(), CONFIG_KEY_LABEL),
        runtime=Runtime(settings, httpx.AsyncClient(follow_redirects=False)),
        messages=GroupCommitEmitter(ctx.pool, ctx.outbox),
    )
    log.info("connector factories installed", factories=sorted(ctx.extras[EXTRA].factories))


async def stop(ctx: ServiceContext) -> None:
    lib = ctx.extras.pop(EXTRA, None)
    if lib is not None:
        await lib.runtime.http.aclose()


def not_found() -> RequestError:
    return RequestError("entity.not_found", 404)


# ---------------------------------------------------------------- reading


def _instance(lib: Library, tenant: str, row: asyncpg.Record) -> Instance | None:
    """None for rows Logto would not show: unknown factory, or a config that cannot be opened."""
    factory = lib.factories.get(row["connector_id"])
    if factory is None:
        return None
    if row["kek_id"] != lib.encryption.kek_id:
        log.error("connector config sealed with another TESSERA_KEY_ENCRYPTION_KEY", connector_id=row["id"])
        return None
    try:
        config = msgspec.json.decode(lib.encryption.decrypt(row["config_encrypted"], associated(tenant, row["id"])))
    except InvalidTag:
        log.error("connector config does not decrypt", connector_id=row["id"])
        return None
    return Instance(row["id"], factory, row["sync_profile"], config, dict(row["metadata"] or {}))


async def instances(ctx: ServiceContext, conn: asyncpg.Connection) -> list[Instance]:
    lib, tenant = library(ctx), current_tenant()
    found = [_instance(lib, tenant, row) for row in await store.list_connectors(conn, tenant)]
    return [i for i in found if i is not None]


async def snapshots(ctx: ServiceContext, conn: asyncpg.Connection) -> list[ConnectorSnapshot]:
    """The tenant's connectors as events describe them (never a config): the rows GET
    /api/connectors shows, so one whose config does not open is left out here too."""
    return [snapshot(i) for i in await instances(ctx, conn)]


async def instance(ctx: ServiceContext, conn: asyncpg.Connection, connector_id: str) -> Instance:
    row = await store.find_connector(conn, current_tenant(), connector_id)
    found = _instance(library(ctx), current_tenant(), row) if row else None
    if found is None:
        raise not_found()
    return found


async def list_for_response(ctx: ServiceContext, target: str | None) -> list[Instance]:
    async with ctx.pool.acquire() as conn:
        every = await instances(ctx, conn)
    check_integrity(every)
    return [i for i in every if target is None or i.target == target]


def _validate(factory: Factory, config: dict[str, Any]) -> None:
    try:
        factory.parse_config(config)
    except ConnectorError as exc:
        raise to_request_error(exc) from None


def _seal(lib: Library, tenant: str, connector_id: str, config: dict[str, Any]) -> bytes:
    return lib.encryption.encrypt(msgspec.json.encode(config), associated(tenant, connector_id))


def associated(tenant: str, connector_id: str) -> bytes:
    """Binds a sealed config to its row: copied to another one, it does not open."""
    return f"{tenant}\x00{connector_id}".encode()


# ---------------------------------------------------------------- writing


async def create(ctx: ServiceContext, body: CreateConnector) -> Instance:
    """POST /connectors, checks in Logto's order (§3.3)."""
    lib, tenant = library(ctx), current_tenant()
    factory = lib.factories.get(body.connector_id)
    if factory is None or factory.id in DEMO_FACTORY_IDS:
        raise RequestError("connector.not_found_with_connector_id", 422)
    override = override_of(body.metadata)
    if factory.is_standard and not (override or {}).get("target"):
        raise RequestError("connector.should_specify_target", 400)
    if not factory.is_standard and body.metadata is not None:
        raise RequestError("connector.cannot_overwrite_metadata_for_non_standard_connector", 400)
    connector_id = body.id or new_id(12)
    config = clean_deep(body.config or {})
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.lock_tenant(conn, tenant)
        if not factory.is_standard and await store.count_of_factory(conn, tenant, factory.id) > 0:
            raise RequestError("connector.multiple_instances_not_supported", 422)
        existing = await instances(ctx, conn)
        if factory.type == "Social":
            target = (override or {}).get("target") or factory.target
            clash = social_clash(existing, target, factory.platform)
            if clash is not None:
                raise clash_error(clash)
        if body.config is not None:
            _validate(factory, body.config)
        if await store.id_exists(conn, tenant, connector_id):
            # Logto answers an unhandled unique violation (500); a clear 422 says the same.
            raise RequestError("entity.create_failed", 422, name="connectors")
        row = await store.insert_connector(
            conn, tenant, id=connector_id, factory_id=factory.id, sync_profile=bool(body.sync_profile),
            config=_seal(lib, tenant, connector_id, config), kek_id=lib.encryption.kek_id, metadata=override or {})
        created = _instance(lib, tenant, row)
        assert created is not None
        await ctx.outbox.emit(conn, ConnectorCreated(connector=snapshot(created)), aggregate_id=created.id,
                              tenant_id=tenant)
        if factory.type in ("Email", "Sms"):  # only one of each: the newest replaces the others
            replaced = [i.id for i in existing if i.type == factory.type]
            await _delete_rows(ctx, conn, replaced)
    return created


async def update(ctx: ServiceContext, connector_id: str, body: UpdateConnector) -> Instance:
    lib, tenant = library(ctx), current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.lock_tenant(conn, tenant)
        current = await instance(ctx, conn, connector_id)
        factory = current.factory
        override = override_of(body.metadata)
        if factory.is_standard and override and override.get("target") != current.target:
            raise RequestError("connector.can_not_modify_target", 400)
        if not factory.is_standard and body.metadata is not None:
            raise RequestError("connector.cannot_overwrite_metadata_for_non_standard_connector", 400)
        if body.sync_profile and current.type != "Social":
            raise RequestError("connector.invalid_type_for_syncing_profile", 422)
        if body.config is not None:
            _validate(factory, body.config)
        config = clean_deep(body.config) if body.config is not None else None
        # clean-deep'ed fields replace what is stored; a body that cleans to nothing changes nothing.
        row = await store.update_connector(
            conn, tenant, connector_id,
            sync_profile=body.sync_profile,
            config=_seal(lib, tenant, connector_id, config) if config is not None else None,
            kek_id=lib.encryption.kek_id if config is not None else None,
            metadata=override if override else None,
        )
        updated = _instance(lib, tenant, row)
        assert updated is not None
        if updated != current:
            await ctx.outbox.emit(conn, ConnectorUpdated(connector=snapshot(updated)), aggregate_id=updated.id,
                                  tenant_id=tenant)
    return updated


async def _delete_rows(ctx: ServiceContext, conn: asyncpg.Connection, ids: list[str]) -> list[str]:
    lib, tenant = library(ctx), current_tenant()
    gone = await store.delete_connectors(conn, tenant, ids)
    for row in gone:
        factory = lib.factories.get(row["connector_id"])
        await ctx.outbox.emit(conn, ConnectorDeleted(
            id=row["id"], connector_factory_id=row["connector_id"], type=factory.type if factory else "Social",
        ), aggregate_id=row["id"], tenant_id=tenant)
    return [row["id"] for row in gone]


async def delete(ctx: ServiceContext, ids: list[str], *, missing_is_error: bool) -> list[str]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.lock_tenant(conn, current_tenant())
        gone = await _delete_rows(ctx, conn, ids)
    if missing_is_error and not gone:
        raise not_found()
    return gone


# ---------------------------------------------------------------- running connectors


async def run_send(lib: Library, factory: Factory, config: dict[str, Any], message: Message) -> None:
    """Validate the config and send; a ConnectorError becomes Logto's RequestError."""
    assert factory.send_message is not None
    try:
        await factory.send_message(lib.runtime, factory.parse_config(config), message)
    except ConnectorError as exc:
        raise to_request_error(exc) from None


async def send_message(ctx: ServiceContext, type_: str, to: str, template: str, payload: dict[str, str]) -> str:
    """Through the one connector of `type_`; announces `message.sent` or `message.failed`
    with the recipient masked. Returns the instance id."""
    lib, tenant = library(ctx), current_tenant()
    async with ctx.pool.acquire() as conn:
        chosen = next((i for i in await instances(ctx, conn) if i.type == type_), None)
    if chosen is None:
        raise RequestError("connector.not_found", 400, type=type_)
    facts = dict(connector_id=chosen.id, connector_factory_id=chosen.factory.id, type=type_, template=template,
                 recipient=mask_recipient(to))
    try:
        await run_send(lib, chosen.factory, chosen.config, Message(to=to, type=template, payload=payload))
    except RequestError as exc:
        log.warning("message not sent", error=exc.code, **facts)
        await lib.messages.emit(MessageFailed(**facts, error_code=exc.code), aggregate_id=chosen.id, tenant_id=tenant)
        raise
    await lib.messages.emit(MessageSent(**facts), aggregate_id=chosen.id, tenant_id=tenant)
    return chosen.id


async def test_message(ctx: ServiceContext, factory_id: str, phone: str | None, email: str | None,
                       config: dict[str, Any]) -> None:
    """POST /connectors/:factoryId/test: the request's config, template `Generic`, code 000000."""
    subject = phone or email
    if not subject:
        raise RequestError("guard.invalid_input", 400, type="body")
    expected = "Sms" if phone else "Email"
    factory = library(ctx).factories.get(factory_id)
    if factory is None or factory.type not in ("Email", "Sms") or factory_id in DEMO_FACTORY_IDS:
        raise RequestError("connector.not_found", 400, type=expected)
    if factory.type != expected:
        raise RequestError("connector.unexpected_type", 400)
    await run_send(library(ctx), factory, config, Message(to=subject, type="Generic", payload={"code": "000000"}))


async def social_instance(ctx: ServiceContext, connector_id: str, wrong_type: RequestError) -> Instance:
    async with ctx.pool.acquire() as conn:
        found = await instance(ctx, conn, connector_id)
    if found.type != "Social":
        raise wrong_type
    return found


async def authorization_uri(ctx: ServiceContext, found: Instance, request: AuthorizationRequest,
                            session: dict[str, Any] | None) -> str:
    factory = found.factory
    assert factory.authorization_uri is not None
    try:
        return await factory.authorization_uri(library(ctx).runtime, factory.parse_config(found.config),
                                               request, session)
    except ConnectorError as exc:
        raise to_request_error(exc) from None


async def user_info(ctx: ServiceContext, found: Instance, data: dict[str, Any],
                    session: dict[str, Any] | None) -> dict[str, Any]:
    factory = found.factory
    assert factory.user_info is not None
    try:
        return await factory.user_info(library(ctx).runtime, factory.parse_config(found.config), data, session)
    except ConnectorError as exc:
        raise to_request_error(exc) from None
