"""Would a new schema of a published event version break one of its readers?

Two readers matter: one written against the published schema that reads new messages, and a
new one that replays the stream's history (old messages). So, field by field:
- a field may not disappear (an old reader may require it);
- a new field needs a default (history does not have it);
- a field's JSON types and enum values may not change (msgspec readers are strict both ways);
- nested objects follow the same rules.
Anything else (descriptions, titles, defaults of optional fields, a required field becoming
optional: every message still carries it) is compatible.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """`old` and `new` are snapshot entries: `{"schema": ..., "components": ...}`."""
    problems: list[str] = []
    _compare(old["schema"], old["components"], new["schema"], new["components"], "data", problems, set())
    return problems


def _resolve(schema: Schema, components: dict[str, Any]) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        seen += 1
    return schema


def _types(schema: Schema, components: dict[str, Any]) -> frozenset[str]:
    schema = _resolve(schema, components)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return frozenset().union(*(_types(s, components) for s in schema[key]))
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return frozenset(f"value:{v!r}" for v in values)
    kind = schema.get("type")
    if isinstance(kind, list):
        return frozenset(kind)
    return frozenset([kind]) if kind else frozenset(["any"])


def _object_of(schema: Schema, components: dict[str, Any]) -> Schema | None:
    schema = _resolve(schema, components)
    if schema.get("type") == "object" and "properties" in schema:
        return schema
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            found = _object_of(option, components)
            if found is not None:
                return found
    return None


def _item_of(schema: Schema, components: dict[str, Any]) -> Schema | None:
    schema = _resolve(schema, components)
    if schema.get("type") == "array":
        return schema.get("items")
    if schema.get("type") == "object" and "additionalProperties" in schema:
        value = schema["additionalProperties"]
        return value if isinstance(value, dict) else None
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            found = _item_of(option, components)
            if found is not None:
                return found
    return None


def _compare(old: Schema, old_c: dict, new: Schema, new_c: dict, path: str, problems: list[str],
             seen: set) -> None:
    key = (id(_resolve(old, old_c)), id(_resolve(new, new_c)))
    if key in seen:  # recursive structures
        return
    seen.add(key)
    old_types, new_types = _types(old, old_c), _types(new, new_c)
    if old_types != new_types:
        problems.append(f"{path}: type {sorted(old_types)} became {sorted(new_types)}")
        return
    old_object, new_object = _object_of(old, old_c), _object_of(new, new_c)
    if old_object is not None and new_object is not None:
        old_fields, new_fields = old_object["properties"], new_object["properties"]
        for name in old_fields:
            if name not in new_fields:
                problems.append(f"{path}.{name}: removed")
            else:
                _compare(old_fields[name], old_c, new_fields[name], new_c, f"{path}.{name}", problems, seen)
        for name in new_fields:
            if name not in old_fields and name in new_object.get("required", []):
                problems.append(f"{path}.{name}: added without a default (history lacks it)")
    old_item, new_item = _item_of(old, old_c), _item_of(new, new_c)
    if old_item is not None and new_item is not None:
        _compare(old_item, old_c, new_item, new_c, f"{path}[]", problems, seen)
