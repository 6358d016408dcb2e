"""The compatibility rule, on payloads changed the ways a developer might change them."""

from typing import Literal

import msgspec
import pytest

from tessera_events.compatibility import breaking_changes


def entry(*structs):
    (schema,), components = msgspec.json.schema_components([structs[0]], ref_template="#/$defs/{name}")
    return {"schema": schema, "components": components}


class Profile(msgspec.Struct):
    name: str
    tags: list[str] = []


class V1(msgspec.Struct):
    user_id: str
    kind: Literal["a", "b"]
    profile: Profile
    note: str | None = None


def changed(**fields):
    """A V1 look-alike with some fields replaced (None: removed)."""
    annotations = dict(V1.__annotations__)
    defaults = {"note": None}
    for name, value in fields.items():
        if value is None:
            annotations.pop(name)
            defaults.pop(name, None)
        else:
            annotations[name], default = value
            if default is not msgspec.NODEFAULT:
                defaults[name] = default
            else:
                defaults.pop(name, None)
    ordered = sorted(annotations, key=lambda n: n in defaults)
    return msgspec.defstruct("V1", [(n, annotations[n], defaults[n]) if n in defaults else (n, annotations[n])
                                     for n in ordered])


class Profile2(msgspec.Struct):
    name: int
    tags: list[str] = []


@pytest.mark.parametrize("new,problem", [
    (changed(user_id=None), "data.user_id: removed"),
    (changed(user_id=(int, msgspec.NODEFAULT)), "data.user_id: type"),
    (changed(kind=(Literal["a", "b", "c"], msgspec.NODEFAULT)), "data.kind: type"),
    (changed(note=(str, msgspec.NODEFAULT)), "data.note: type"),
    (changed(email=(str, msgspec.NODEFAULT)), "data.email: added without a default"),
    (changed(profile=(Profile2, msgspec.NODEFAULT)), "data.profile.name: type"),
])
def test_breaking_changes_are_found(new, problem):
    problems = breaking_changes(entry(V1), entry(new))
    assert any(p.startswith(problem) for p in problems), problems


def test_compatible_changes_pass():
    assert breaking_changes(entry(V1), entry(V1)) == []
    assert breaking_changes(entry(V1), entry(changed(email=(str | None, None)))) == []
    assert breaking_changes(entry(V1), entry(changed(tags=(list[str], [])))) == []
