"""`/api/connectors*` and `/api/connector-factories*` (Logto §3.3, §7)."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from tessera_connectors import service
from tessera_connectors.domain import (
    AuthorizationUriBody,
    CreateConnector,
    TestMessage,
    UpdateConnector,
    connector_response,
)
from tessera_connectors.factories.base import AuthorizationRequest
from tessera_kit.app import Ctx
from tessera_kit.errors import RequestError

TAGS = ["Connectors"]
FACTORY_TAGS = ["Connector factories"]


@get("/api/connectors", operation_id="ListConnectors", tags=TAGS, summary="Get connectors",
     description="Every connector whose factory is installed; `target` filters on the effective target. "
                 "400 when the stored connectors break a uniqueness rule.")
async def list_connectors(ctx: Ctx, target: FromQuery[str | None] = None) -> list[dict[str, Any]]:
    return [connector_response(i) for i in await service.list_for_response(ctx, target)]


@post("/api/connectors", operation_id="CreateConnector", tags=TAGS, status_code=200, summary="Create a connector",
      description="`connectorId` is the factory id. Creating an Email or SMS connector deletes the other "
                  "connectors of that type.")
async def create_connector(data: JSONBody[CreateConnector], ctx: Ctx) -> dict[str, Any]:
    return connector_response(await service.create(ctx, data))


@get("/api/connectors/{id:str}", operation_id="GetConnector", tags=TAGS, summary="Get a connector")
async def get_connector(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 (Logto's name)
    async with ctx.pool.acquire() as conn:
        return connector_response(await service.instance(ctx, conn, id))


@patch("/api/connectors/{id:str}", operation_id="UpdateConnector", tags=TAGS, summary="Update a connector",
       description="`config`, `metadata` (standard connectors, same target) and `syncProfile` (social only) "
                   "replace the stored values.")
async def update_connector(data: JSONBody[UpdateConnector], ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    return connector_response(await service.update(ctx, id, data))


@delete("/api/connectors/{id:str}", operation_id="DeleteConnector", tags=TAGS, status_code=204,
        summary="Delete a connector")
async def delete_connector(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    await service.delete(ctx, [id], missing_is_error=True)


@post("/api/connectors/{factoryId:str}/test", operation_id="TestConnector", tags=TAGS, status_code=204,
      summary="Send a test message",
      description="Sends code 000000 with the `Generic` template through the factory with the given "
                  "`config` (nothing is stored).")
async def test_connector(data: JSONBody[TestMessage], ctx: Ctx, factoryId: FromPath[str]) -> None:  # noqa: N803
    await service.test_message(ctx, factoryId, data.phone, data.email, data.config)


@post("/api/connectors/{connectorId:str}/authorization-uri", operation_id="CreateConnectorAuthorizationUri",
      tags=TAGS, status_code=200, summary="Get a social connector's authorization URI",
      description="Only for connectors that keep no session (GitHub, Google, ...): the generic OIDC "
                  "connector answers 501 `connector.not_implemented` here, as in Logto.")
async def authorization_uri(data: JSONBody[AuthorizationUriBody], request: Request, ctx: Ctx,
                            connectorId: FromPath[str]) -> dict[str, str]:  # noqa: N803
    if not data.state or not data.redirect_uri:
        raise RequestError("session.insufficient_info", 400)
    found = await service.social_instance(ctx, connectorId, RequestError("connector.unexpected_type", 400))
    redirect_to = await service.authorization_uri(ctx, found, AuthorizationRequest(
        state=data.state, redirect_uri=data.redirect_uri, connector_id=found.id,
        connector_factory_id=found.factory.id, jti="", user_agent=request.headers.get("user-agent"),
    ), None)
    return {"redirectTo": redirect_to}


@get("/api/connector-factories", operation_id="ListConnectorFactories", tags=FACTORY_TAGS,
     summary="Get connector factories")
async def list_factories(ctx: Ctx) -> list[dict[str, Any]]:
    return [f.response() for f in service.library(ctx).factories.values()]


@get("/api/connector-factories/{id:str}", operation_id="GetConnectorFactory", tags=FACTORY_TAGS,
     summary="Get a connector factory")
async def get_factory(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    factory = service.library(ctx).factories.get(id)
    if factory is None:
        raise service.not_found()
    return factory.response()


route_handlers = [
    list_connectors, create_connector, get_connector, update_connector, delete_connector,
    test_connector, authorization_uri, list_factories, get_factory,
]
