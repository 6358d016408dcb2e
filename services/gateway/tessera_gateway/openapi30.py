"""An OpenAPI 3.1 document (what Litestar writes) as OpenAPI 3.0, the version Logto serves
and its clients validate against (`openapi-schema-validator` with `version: 3`).

The differences that matter are in Schema Objects, which 3.1 takes from JSON Schema 2020-12
and 3.0 restricts: `type` is one name (a `null` member becomes `nullable: true`), `const`
becomes a one-value `enum`, `examples` (a list) becomes `example`, numeric
`exclusiveMinimum`/`exclusiveMaximum` become booleans beside `minimum`/`maximum`, `$ref` has no
siblings, and keywords 3.0 lacks are dropped. Everywhere else only a few 3.1-only fields go.
Pure functions: the input is not modified.
"""

from __future__ import annotations

from typing import Any

VERSION = "3.0.3"

# The keywords of a 3.0 Schema Object; anything else (but `x-` extensions) is not allowed.
_SCHEMA_KEYWORDS = frozenset({
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
    "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties",
    "required", "enum", "type", "not", "allOf", "oneOf", "anyOf", "items", "properties",
    "additionalProperties", "description", "format", "default", "nullable", "discriminator", "readOnly",
    "writeOnly", "example", "externalDocs", "deprecated", "xml",
})
_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_NULL = {"type": "null"}


def to_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    converted = {k: v for k, v in document.items() if k not in ("webhooks", "jsonSchemaDialect")}
    converted["openapi"] = VERSION
    if isinstance(document.get("info"), dict):
        info = {k: v for k, v in document["info"].items() if k != "summary"}
        if isinstance(info.get("license"), dict):
            info["license"] = {k: v for k, v in info["license"].items() if k != "identifier"}
        converted["info"] = info
    converted["paths"] = {path: _path_item(item) for path, item in (document.get("paths") or {}).items()}
    if isinstance(document.get("components"), dict):
        converted["components"] = _components(document["components"])
    return converted


def _components(components: dict[str, Any]) -> dict[str, Any]:
    converters = {"schemas": schema, "parameters": _parameter, "requestBodies": _request_body,
                  "responses": _response, "headers": _parameter}
    result: dict[str, Any] = {}
    for section, entries in components.items():
        if section == "pathItems":  # 3.1 only
            continue
        convert = converters.get(section)
        result[section] = {name: convert(value) for name, value in entries.items()} if convert else entries
    return result


def _path_item(item: dict[str, Any]) -> dict[str, Any]:
    result = dict(item)
    for method in _OPERATIONS:
        if isinstance(item.get(method), dict):
            result[method] = _operation(item[method])
    if isinstance(item.get("parameters"), list):
        result["parameters"] = [_parameter(p) for p in item["parameters"]]
    return result


def _operation(operation: dict[str, Any]) -> dict[str, Any]:
    result = dict(operation)
    if isinstance(operation.get("parameters"), list):
        result["parameters"] = [_parameter(p) for p in operation["parameters"]]
    if isinstance(operation.get("requestBody"), dict):
        result["requestBody"] = _request_body(operation["requestBody"])
    if isinstance(operation.get("responses"), dict):
        result["responses"] = {status: _response(r) for status, r in operation["responses"].items()}
    return result


def _content(content: dict[str, Any]) -> dict[str, Any]:
    media: dict[str, Any] = {}
    for media_type, value in content.items():
        value = dict(value)
        if isinstance(value.get("schema"), dict):
            value["schema"] = schema(value["schema"])
        media[media_type] = value
    return media


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in parameter:
        return {"$ref": parameter["$ref"]}
    result = dict(parameter)
    if isinstance(parameter.get("schema"), dict):
        result["schema"] = schema(parameter["schema"])
    if isinstance(parameter.get("content"), dict):
        result["content"] = _content(parameter["content"])
    return result


def _request_body(body: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in body:
        return {"$ref": body["$ref"]}
    result = dict(body)
    if isinstance(body.get("content"), dict):
        result["content"] = _content(body["content"])
    return result


def _response(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        return {"$ref": response["$ref"]}
    result = dict(response)
    if isinstance(response.get("content"), dict):
        result["content"] = _content(response["content"])
    if isinstance(response.get("headers"), dict):
        result["headers"] = {name: _parameter(h) for name, h in response["headers"].items()}
    return result


def schema(value: Any) -> Any:
    """One Schema Object, 3.1 -> 3.0 (recursively)."""
    if isinstance(value, bool):  # JSON Schema's `true` / `false` schemas
        return {} if value else {"not": {}}
    if not isinstance(value, dict):
        return value
    value = dict(value)
    nullable = value.pop("nullable", False) is True

    if "const" in value:
        value.setdefault("enum", [value["const"]])
    if "examples" in value:
        examples = value["examples"]
        if isinstance(examples, list) and examples and "example" not in value:
            value["example"] = examples[0]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(value.get(exclusive), (int, float)) and not isinstance(value.get(exclusive), bool):
            value[bound] = value[exclusive]
            value[exclusive] = True

    kind = value.get("type")
    if isinstance(kind, list):
        names = [t for t in kind if t != "null"]
        nullable = nullable or len(names) < len(kind)
        if len(names) == 1:
            value["type"] = names[0]
        else:
            value.pop("type")
            if names:
                value["anyOf"] = [{"type": t} for t in names] + list(value.get("anyOf", []))
    elif kind == "null":
        value.pop("type")
        nullable = True

    for combinator in ("oneOf", "anyOf"):
        members = value.get(combinator)
        if isinstance(members, list):
            kept = [m for m in members if m != _NULL]
            nullable = nullable or len(kept) < len(members)
            if len(kept) == 1 and not any(k in value for k in ("type", "$ref")) and isinstance(kept[0], dict):
                # `oneOf: [X, null]` is X, nullable: one schema, converted as such
                value.pop(combinator)
                merged = {**kept[0], **value} if "$ref" not in kept[0] else {**value, "allOf": [kept[0]]}
                return schema({**merged, "nullable": True} if nullable else merged)
            elif kept:
                value[combinator] = kept
            else:
                value.pop(combinator)

    if "$ref" in value:
        ref = value.pop("$ref")
        extra = {k: v for k, v in value.items() if k in ("description", "title", "default", "readOnly", "writeOnly")}
        if not extra and not nullable:
            return {"$ref": ref}
        value = {**extra, "allOf": [{"$ref": ref}]}

    result: dict[str, Any] = {}
    for key, item in value.items():
        if key.startswith("x-"):
            result[key] = item
        elif key not in _SCHEMA_KEYWORDS:
            continue
        elif key in ("properties",):
            result[key] = {name: schema(s) for name, s in item.items()}
        elif key in ("allOf", "oneOf", "anyOf"):
            result[key] = [schema(s) for s in item]
        elif key == "additionalProperties" and isinstance(item, bool):
            result[key] = item
        elif key in ("items", "not", "additionalProperties"):
            result[key] = schema(item) if not isinstance(item, list) else schema(item[0] if item else {})
        elif key == "required":
            if item:
                result[key] = item
        elif key == "enum":
            if item:
                result[key] = [v for v in item if v is not None] if nullable else item
                if not result[key]:
                    result.pop(key)
        else:
            result[key] = item
    if nullable:
        result["nullable"] = True
    return result
