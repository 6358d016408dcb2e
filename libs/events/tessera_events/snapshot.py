"""The published schema of every event version, frozen in `schemas/published.json`.

`python -m tessera_events.snapshot` (`make catalogue`) rewrites the file after adding a
version or making a compatible change (compatibility.py says what is compatible); it refuses
a change that would break a reader, and so does the test suite, because subscribers outside
Tessera rely on it. Change a payload incompatibly only as a new version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from tessera_events.catalogue import all_event_types

SNAPSHOT = Path(__file__).parent / "schemas" / "published.json"


def current_schemas() -> dict[str, Any]:
    events = all_event_types()
    schemas, components = msgspec.json.schema_components([e.data for e in events])
    return {
        f"{e.type}.v{e.version}": {"schema": schema, "components": _reachable(schema, components)}
        for e, schema in zip(events, schemas)
    }


def _reachable(schema: Any, components: dict[str, Any]) -> dict[str, Any]:
    """Only the components a schema refers to (transitively), so an unrelated
    change elsewhere does not look like a change of this version."""
    found: dict[str, Any] = {}
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in found:
                    found[name] = components[name]
                    stack.append(components[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return dict(sorted(found.items()))


def published() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}


def breaking() -> dict[str, list[str]]:
    """Published versions whose current schema would break a reader (compatibility.py)."""
    from tessera_events.compatibility import breaking_changes

    frozen, now = published(), current_schemas()
    found = {name: breaking_changes(frozen[name], now[name]) for name in frozen if name in now}
    found.update({name: ["removed from the catalogue"] for name in frozen if name not in now})
    return {name: problems for name, problems in found.items() if problems}


def write() -> None:
    problems = breaking()
    if problems:
        raise SystemExit(f"not written: these changes would break readers (add a new version): {problems}")
    merged = {**published(), **current_schemas()}
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps(dict(sorted(merged.items())), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tessera_events  # noqa: F401  (registers every event)

    write()
    print(f"wrote {SNAPSHOT.name}", file=sys.stderr)
