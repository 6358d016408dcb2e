"""What the connectors service answers over rpc for the sign-in experience
(`rpc.connectors.<name>`). Defined by experience, the first caller; served by connectors.

- SEND_MESSAGE           send a verification code through the single Email (or SMS) connector.
- AUTHORIZATION_URI      a social connector's authorization URL for an interaction.
- INTERACTION_USER_INFO  a social connector's user info for what the provider sent back.
- DELETE_CONNECTORS      delete connector instances (the sign-in experience's
                         `removeUnusedDemoSocialConnector`).
- LIST_CONNECTORS        the tenant's connector instances as they are now (snapshots, never
                         configs): what a write checks against, where experience's read model
                         (fed by events, some milliseconds behind) could refuse a connector
                         the caller has just created.

Errors are Logto's (`RequestError`s reach the caller as they are):
- no connector of the type (SEND_MESSAGE): 400 `connector.not_found`;
- unknown connector id: 404 `entity.not_found`; not a social connector: 400
  `connector.unexpected_type` (AUTHORIZATION_URI) / 422 `session.invalid_connector_id`
  (INTERACTION_USER_INFO);
- what a connector reports, mapped as Logto §7.4 (`connector.<code>` with its status: 400,
  401 for social auth failures, 429 `rate_limit_exceeded`, 501 `not_implemented`), e.g.
  400 `connector.template_not_found` when the connector has no template for `template`.

When nobody serves these (no connectors service yet) the caller gets 503 from the kit;
experience then answers as Logto does without a connector (`connector.not_found`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tessera_events.connectors import ConnectorSnapshot
from tessera_events.rpc import RpcOperation

MessageType = Literal["Email", "Sms"]
# Logto's connector message types (the template a connector uses).
MessageTemplate = Literal["SignIn", "Register", "ForgotPassword", "Generic"]


class SendMessageRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`to` is an email address (Email) or a phone number (Sms); `payload` is what the
    template is filled with, `{"code": "123456"}` for a verification code."""

    type: MessageType
    to: str
    template: MessageTemplate
    payload: dict[str, str]
    tenant_id: str


class MessageSent(msgspec.Struct, frozen=True, kw_only=True):
    """`connector_id`: the instance that sent it (logged as `connectorId`)."""

    connector_id: str


class AuthorizationUriRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Logto's `getAuthorizationUri({state, redirectUri, connectorId, connectorFactoryId, jti,
    headers: {userAgent}}, setSession)`. `interaction_id` is the OIDC interaction uid (jti)."""

    connector_id: str
    state: str
    redirect_uri: str
    interaction_id: str
    user_agent: str | None = None
    tenant_id: str


class AuthorizationUri(msgspec.Struct, frozen=True, kw_only=True):
    """`connector_session`: what the connector asked to keep (`setSession`), handed back to
    INTERACTION_USER_INFO; the caller stores it with the interaction."""

    redirect_to: str
    connector_session: dict[str, Any] = {}


class InteractionUserInfoRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Logto's `getUserInfo(connectorData, getSession)`; `connector_session` is `None` when the
    interaction holds none (the connector decides whether it needs one: 400
    `session.connector_validation_session_not_found`)."""

    connector_id: str
    connector_data: dict[str, Any]
    connector_session: dict[str, Any] | None = None
    interaction_id: str
    tenant_id: str


class InteractionUserInfo(msgspec.Struct, frozen=True, kw_only=True):
    """`target`: the connector's target (the key under a user's `identities`); `sync_profile`:
    whether name and avatar follow the social profile at each sign-in; `user_info`: `id` and
    optionally `email`, `phone`, `name`, `avatar`, `rawData`."""

    target: str
    sync_profile: bool = False
    user_info: dict[str, Any]


class DeleteConnectorsRequest(msgspec.Struct, frozen=True, kw_only=True):
    ids: list[str]
    tenant_id: str


class DeletedConnectors(msgspec.Struct, frozen=True, kw_only=True):
    """Ids actually deleted (unknown ids are skipped, not an error)."""

    ids: list[str]


class ListConnectorsRequest(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str


class ConnectorList(msgspec.Struct, frozen=True, kw_only=True):
    connectors: list[ConnectorSnapshot]


SEND_MESSAGE = RpcOperation("connectors", "send_message", SendMessageRequest, MessageSent)
AUTHORIZATION_URI = RpcOperation("connectors", "authorization_uri", AuthorizationUriRequest, AuthorizationUri)
INTERACTION_USER_INFO = RpcOperation(
    "connectors", "interaction_user_info", InteractionUserInfoRequest, InteractionUserInfo
)
DELETE_CONNECTORS = RpcOperation("connectors", "delete_connectors", DeleteConnectorsRequest, DeletedConnectors)
LIST_CONNECTORS = RpcOperation("connectors", "list_connectors", ListConnectorsRequest, ConnectorList)
