"""The kit documents what it answers: Logto's error body on every 4xx of `/api`, the statuses
it adds itself, and whatever a service declares for an operation."""

import json

import msgspec
from litestar import get, post
from litestar.params import FromPath, JSONBody

from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import INTERNAL_KEY


class NewThing(msgspec.Struct):
    name: str


@post("/api/things", operation_id="CreateThing", status_code=201)
async def create_thing(data: JSONBody[NewThing]) -> dict:
    return {}


@get("/api/things/{thing_id:str}", operation_id="GetThing")
async def get_thing(thing_id: FromPath[str]) -> dict:
    return {}


@post("/oidc/thing", operation_id="OidcThing")
async def oidc_thing() -> dict:
    return {}


def document(declared=None) -> dict:
    spec = ServiceSpec(
        name="docs", route_handlers=[create_thing, get_thing, oidc_thing],
        settings=ServiceSettings(database_url="postgresql://unused/x", nats_url="nats://unused:4222",
                                 internal_key=INTERNAL_KEY),
        documented_operations=declared or {},
    )
    return create_app(spec).openapi_schema.to_schema()


def test_every_4xx_of_the_api_is_logtos_error_with_the_kits_statuses():
    doc = document()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/LogtoError"}}}
    create = doc["paths"]["/api/things"]["post"]["responses"]
    assert set(create) == {"201", "400", "413", "422"}
    read = doc["paths"]["/api/things/{thing_id}"]["get"]["responses"]
    assert set(read) == {"200", "400", "404"}
    for status in ("400", "413", "422"):
        assert create[status]["content"] == error
    assert read["404"]["content"] == error
    assert doc["components"]["schemas"]["LogtoError"]["required"] == ["code", "message"]
    # Litestar's own error shape is gone from the document
    assert "status_code" not in json.dumps(doc)
    # /oidc speaks OAuth's errors: the kit leaves it to the service
    assert not any(s.startswith("4") for s in doc["paths"]["/oidc/thing"]["post"]["responses"])


def test_a_service_declares_parameters_bodies_and_statuses():
    form = {"required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}
    doc = document({"OidcThing": {
        "replaceResponses": True, "requestBody": form,
        "parameters": [{"name": "x", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok"}, "401": {"description": "no"}},
    }, "GetThing": {"responses": {"409": {"description": "busy"}}}})
    oidc = doc["paths"]["/oidc/thing"]["post"]
    assert set(oidc["responses"]) == {"200", "401"}
    assert oidc["requestBody"] == form
    assert oidc["parameters"][0]["name"] == "x"
    assert set(doc["paths"]["/api/things/{thing_id}"]["get"]["responses"]) == {"200", "400", "404", "409"}


def test_the_document_is_built_when_first_asked_for_with_the_kits_documentation():
    """Not at start-up (memory a process nobody asks for its document would keep), and a
    document built later still carries everything the kit and the service declare."""
    from litestar._openapi.plugin import OpenAPIPlugin

    spec = ServiceSpec(
        name="docs", route_handlers=[create_thing, get_thing],
        settings=ServiceSettings(database_url="postgresql://unused/x", nats_url="nats://unused:4222",
                                 internal_key=INTERNAL_KEY),
        documented_bodies={"CreateThing": NewThing},
        documented_operations={"GetThing": {"summary": "Read a thing"}},
    )
    app = create_app(spec)
    assert app.plugins.get(OpenAPIPlugin)._openapi is None
    doc = app.openapi_schema.to_schema()
    assert doc["paths"]["/api/things/{thing_id}"]["get"]["summary"] == "Read a thing"
    assert "NewThing" in doc["components"]["schemas"] and "LogtoError" in doc["components"]["schemas"]
    # the JSON the service serves at /schema/openapi.json is made from that document
    assert app.plugins.get(OpenAPIPlugin).provide_openapi_schema() == doc
