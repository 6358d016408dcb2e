"""`/api/swagger.json` merges the services' documents; `/api/asyncapi.json` is the catalogue's."""

from __future__ import annotations

import time

import httpx

from tessera_gateway.openapi import merge_documents


def test_swagger_merges_running_services_and_skips_down_ones(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/api/swagger.json")  # anonymous, like Logto's
    assert time.monotonic() - started < 3  # the down connectors service does not hold it up
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["info"]["title"] == "Tessera"
    assert document["openapi"].startswith("3.")
    # identity (also configured as audit-log: asked once) and rbac are up; connectors is down.
    assert "/api/identity-things" in document["paths"]
    assert "/api/rbac-things" in document["paths"]
    assert "/api/status" in document["paths"]
    assert {"IdentityThing", "RbacThing"} <= set(document["components"]["schemas"])
    assert [t["name"] for t in document["tags"]] == ["identity", "rbac"]


def test_swagger_is_cached(client: httpx.Client) -> None:
    first = client.get("/api/swagger.json").content
    assert client.get("/api/swagger.json").content == first


def test_merge_documents() -> None:
    a = {"paths": {"/api/x": {"get": {"operationId": "GetX"}}},
         "components": {"schemas": {"X": {"type": "object"}, "Shared": {"title": "from a"}}},
         "tags": [{"name": "X"}]}
    b = {"paths": {"/api/x": {"post": {"operationId": "PostX"}}, "/api/y": {"get": {}}},
         "components": {"schemas": {"Shared": {"title": "from b"}},
                        "securitySchemes": {"bearer": {"type": "http"}}},
         "tags": [{"name": "X"}, {"name": "Y"}]}
    merged = merge_documents([a, b])
    assert merged["info"]["title"] == "Tessera"
    assert set(merged["paths"]["/api/x"]) == {"get", "post"}
    assert "/api/y" in merged["paths"]
    assert merged["components"]["schemas"]["Shared"] == {"title": "from a"}
    assert merged["components"]["securitySchemes"] == {"bearer": {"type": "http"}}
    assert [t["name"] for t in merged["tags"]] == ["X", "Y"]
    assert merge_documents([])["paths"].keys() >= {"/api/status", "/api/swagger.json"}


def test_asyncapi(client: httpx.Client) -> None:
    response = client.get("/api/asyncapi.json")
    # 200 with the event catalogue's document, or 503 while the catalogue cannot build one.
    assert response.status_code in (200, 503)
    if response.status_code == 200:
        assert "asyncapi" in response.json()
    else:
        assert response.json()["code"] == "service.unavailable"


# ------------------------------------------------------------------ OpenAPI 3.1 -> 3.0


def _document(schemas: dict, parameters: list | None = None) -> dict:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1", "summary": "3.1 only"},
            "paths": {"/api/x": {"get": {"parameters": parameters or [], "responses": {"200": {
                "description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"},
                                                                      "examples": {"one": {"value": {}}}}}}}}}},
            "components": {"schemas": schemas}}


def test_a_31_document_becomes_a_valid_30_one() -> None:
    from openapi_spec_validator.validation.validators import OpenAPIV30SpecValidator

    from tessera_gateway.openapi30 import to_openapi_30

    schemas = {
        "X": {"type": "object", "required": [], "properties": {
            "name": {"type": ["string", "null"], "examples": ["alice"]},
            "kind": {"const": "User"},
            "count": {"type": "integer", "exclusiveMinimum": 0},
            "either": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "null"}]},
            "ref": {"$ref": "#/components/schemas/Y", "description": "a Y"},
            "maybeRef": {"oneOf": [{"$ref": "#/components/schemas/Y"}, {"type": "null"}]},
            "many": {"type": ["string", "integer"]},
            "tuple": {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "string"}},
            "free": {"type": "object", "additionalProperties": False, "$comment": "3.1 keyword"},
        }},
        "Y": {"type": "object"},
    }
    parameter = {"name": "q", "in": "query", "schema": {"oneOf": [{"type": "string"}, {"type": "null"}]}}
    source = _document(schemas, [parameter])
    before = repr(source)
    converted = to_openapi_30(source)
    assert repr(source) == before  # the input is left alone
    assert OpenAPIV30SpecValidator(source).is_valid() is False  # what Logto's suite rejected
    errors = [e.message for e in OpenAPIV30SpecValidator(converted).iter_errors()]
    assert errors == []
    assert converted["openapi"] == "3.0.3" and "summary" not in converted["info"]
    props = converted["components"]["schemas"]["X"]["properties"]
    assert "required" not in converted["components"]["schemas"]["X"]  # an empty list is invalid in 3.0
    assert props["name"] == {"type": "string", "example": "alice", "nullable": True}
    assert props["kind"] == {"enum": ["User"]}
    assert props["count"] == {"type": "integer", "minimum": 0, "exclusiveMinimum": True}
    assert props["either"] == {"type": "string", "minLength": 1, "nullable": True}
    assert props["ref"] == {"description": "a Y", "allOf": [{"$ref": "#/components/schemas/Y"}]}
    assert props["maybeRef"] == {"allOf": [{"$ref": "#/components/schemas/Y"}], "nullable": True}
    assert props["many"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["tuple"] == {"type": "array", "items": {"type": "string"}}
    assert props["free"] == {"type": "object", "additionalProperties": False}
    assert converted["paths"]["/api/x"]["get"]["parameters"][0]["schema"] == {"type": "string", "nullable": True}
    media = converted["paths"]["/api/x"]["get"]["responses"]["200"]["content"]["application/json"]
    assert media["examples"] == {"one": {"value": {}}}  # a media type's `examples` is 3.0 too


def test_swagger_is_served_as_openapi_30(client: httpx.Client) -> None:
    document = client.get("/api/swagger.json").json()
    assert document["openapi"] == "3.0.3"


def test_the_management_api_documents_its_token_and_the_public_routes_do_not() -> None:
    merged = merge_documents([{"paths": {
        "/api/users/{userId}": {"get": {"operationId": "GetUser", "responses": {"200": {"description": "ok"}}}},
        "/api/interaction": {"put": {"operationId": "PutInteraction", "responses": {"204": {"description": "ok"}}}},
    }}])
    managed = merged["paths"]["/api/users/{userId}"]["get"]
    assert managed["security"] == [{"ManagementApiToken": []}]
    assert set(managed["responses"]) == {"200", "401", "403"}
    assert managed["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LogtoError"}
    assert merged["components"]["securitySchemes"]["ManagementApiToken"]["scheme"] == "bearer"
    assert "LogtoError" in merged["components"]["schemas"]
    anonymous = merged["paths"]["/api/interaction"]["put"]
    assert "security" not in anonymous and set(anonymous["responses"]) == {"204"}


def test_a_create_operation_links_to_what_it_created() -> None:
    entity = {"content": {"application/json": {"schema": {"type": "object"}}}, "description": "ok"}
    nothing = {"content": {"application/json": {"schema": {}}}, "description": "ok"}
    op = lambda name, responses=None: {"operationId": name, "responses": responses or {"200": {"description": "ok"}}}  # noqa: E731
    merged = merge_documents([{"paths": {
        "/api/resources": {"post": op("CreateResource", {"201": entity})},
        "/api/resources/{id}": {"get": op("GetResource"), "delete": op("DeleteResource")},
        "/api/resources/{resourceId}/scopes": {"post": op("CreateResourceScope", {"201": entity})},
        "/api/resources/{resourceId}/scopes/{scopeId}": {"patch": op("UpdateResourceScope")},
        "/api/roles/{id}/users": {"post": op("AssignUsers", {"201": nothing})},
        "/api/roles/{id}/users/{userId}": {"delete": op("RemoveUser")},
    }}])
    links = merged["paths"]["/api/resources"]["post"]["responses"]["201"]["links"]
    assert links["GetResource"] == {"operationId": "GetResource", "parameters": {"id": "$response.body#/id"}}
    # a path below with an identifier the creation does not give gets no link
    assert set(links) == {"GetResource", "DeleteResource", "CreateResourceScope"}
    nested = merged["paths"]["/api/resources/{resourceId}/scopes"]["post"]["responses"]["201"]["links"]
    assert nested["UpdateResourceScope"]["parameters"] == {
        "resourceId": "$request.path.resourceId", "scopeId": "$response.body#/id"}
    # an assignment answers no entity: no link
    assert "links" not in merged["paths"]["/api/roles/{id}/users"]["post"]["responses"]["201"]
