"""What rbac answers beyond the kit's rules is in its OpenAPI document (found by the schema
fuzz run's stateful phase): Koa's text `Created` / `OK`, and an application's roles refusing
an application that is not machine-to-machine, reads included."""

from tessera_rbac.main import app


def test_text_answers_and_the_machine_to_machine_rule_are_documented():
    paths = app.openapi_schema.to_schema()["paths"]
    created = paths["/api/users/{userId}/roles"]["post"]["responses"]["201"]["content"]
    assert created == {"text/plain": {"schema": {"type": "string", "enum": ["Created"]}}}
    replaced = paths["/api/applications/{id}/roles"]["put"]["responses"]
    assert replaced["200"]["content"]["text/plain"]["schema"]["enum"] == ["OK"]
    for method in ("get", "post", "put"):
        refused = paths["/api/applications/{id}/roles"][method]["responses"]["422"]
        assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LogtoError"}
    assert "422" in paths["/api/applications/{id}/roles/{roleId}"]["delete"]["responses"]
