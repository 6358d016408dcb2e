"""What connectors answers over NATS (contracts in tessera_events.contracts.connectors).
Replies carry what the caller needs, never a connector's config."""

from __future__ import annotations

from tessera_connectors import service
from tessera_connectors.factories.base import AuthorizationRequest
from tessera_events.contracts.connectors import (
    AUTHORIZATION_URI,
    DELETE_CONNECTORS,
    INTERACTION_USER_INFO,
    LIST_CONNECTORS,
    SEND_MESSAGE,
    AuthorizationUri,
    AuthorizationUriRequest,
    ConnectorList,
    DeleteConnectorsRequest,
    DeletedConnectors,
    InteractionUserInfo,
    InteractionUserInfoRequest,
    ListConnectorsRequest,
    MessageSent,
    SendMessageRequest,
)
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError
from tessera_kit.rpc import RpcHandler


async def send_message(ctx: ServiceContext, r: SendMessageRequest) -> MessageSent:
    connector_id = await service.send_message(ctx, r.type, r.to, r.template, dict(r.payload))
    return MessageSent(connector_id=connector_id)


async def authorization_uri(ctx: ServiceContext, r: AuthorizationUriRequest) -> AuthorizationUri:
    found = await service.social_instance(ctx, r.connector_id, RequestError("connector.unexpected_type", 400))
    session: dict = {}
    redirect_to = await service.authorization_uri(ctx, found, AuthorizationRequest(
        state=r.state, redirect_uri=r.redirect_uri, connector_id=found.id, connector_factory_id=found.factory.id,
        jti=r.interaction_id, user_agent=r.user_agent,
    ), session)
    # Logto's setSession also records which connector the session belongs to.
    if session:
        session = {**session, "connectorId": found.id, "jti": r.interaction_id}
    return AuthorizationUri(redirect_to=redirect_to, connector_session=session)


async def interaction_user_info(ctx: ServiceContext, r: InteractionUserInfoRequest) -> InteractionUserInfo:
    found = await service.social_instance(
        ctx, r.connector_id, RequestError("session.invalid_connector_id", 422, connectorId=r.connector_id))
    session = r.connector_session
    if session is not None and session.get("connectorId") not in (None, found.id):
        raise RequestError("session.connector_id_mismatch", 400)
    if session is None and r.interaction_id and found.factory.id in ("oidc", "oauth2"):
        # These keep a nonce, a PKCE verifier and the redirect URI between the two legs.
        raise RequestError("session.connector_validation_session_not_found", 400)
    info = await service.user_info(ctx, found, dict(r.connector_data), session)
    return InteractionUserInfo(target=found.target, sync_profile=found.sync_profile, user_info=info)


async def delete_connectors(ctx: ServiceContext, r: DeleteConnectorsRequest) -> DeletedConnectors:
    return DeletedConnectors(ids=await service.delete(ctx, list(r.ids), missing_is_error=False))


async def list_connectors(ctx: ServiceContext, r: ListConnectorsRequest) -> ConnectorList:
    async with ctx.pool.acquire() as conn:
        return ConnectorList(connectors=await service.snapshots(ctx, conn))


HANDLERS = [
    RpcHandler(SEND_MESSAGE, send_message, with_context=True),
    RpcHandler(AUTHORIZATION_URI, authorization_uri, with_context=True),
    RpcHandler(INTERACTION_USER_INFO, interaction_user_info, with_context=True),
    RpcHandler(DELETE_CONNECTORS, delete_connectors, with_context=True),
    RpcHandler(LIST_CONNECTORS, list_connectors, with_context=True),
]
