import msgspec
import pytest

import tessera_events
from tessera_events import Actor, Envelope, decode_data, decode_envelope, event_type_of, lookup
from tessera_events.asyncapi import build_document
from tessera_events.catalogue import STREAMS, event
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_events.snapshot import breaking, current_schemas, published


def test_no_published_event_version_breaks_its_readers():
    """A published (type, version) changes only compatibly; an incompatible change is a new version."""
    assert breaking() == {}, "add a new version instead"


def test_the_snapshot_holds_the_current_schemas():
    frozen, now = published(), current_schemas()
    stale = [name for name in frozen if name in now and frozen[name] != now[name]]
    assert stale == [], f"compatible changes not frozen yet: run `make catalogue`: {stale}"


def test_every_event_version_is_published():
    unpublished = sorted(set(current_schemas()) - set(published()))
    assert unpublished == [], f"run `python -m tessera_events.snapshot`: {unpublished}"


def test_envelope_round_trip_keeps_data_for_its_type():
    data = UserCreated(user=UserSnapshot(id="u1", username="alice"), has_password=True)
    envelope = Envelope(
        id="e1", type="identity.user.created", version=1, tenant_id="default",
        occurred_at=1, actor=Actor(type="user", id="admin"), request_id="r1",
        data=msgspec.Raw(msgspec.json.encode(data)),
    )
    decoded = decode_envelope(msgspec.json.encode(envelope))
    assert decoded.actor == Actor(type="user", id="admin")
    assert decode_data(decoded) == data
    assert event_type_of(data).type == "identity.user.created"


def _property_names(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                yield from value
            yield from _property_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _property_names(value)


def test_no_event_carries_a_password_or_hash():
    for name, entry in current_schemas().items():
        fields = {f.lower() for f in _property_names(entry)}
        assert not {f for f in fields if "password" in f and f != "has_password"}, name
        assert not {f for f in fields if "hash" in f or "secret" in f}, name


def test_registering_a_version_twice_or_an_unknown_service_fails():
    with pytest.raises(ValueError):
        event("identity.user.created", 1)(type("Again", (tessera_events.EventData,), {}))
    with pytest.raises(ValueError):
        event("nowhere.thing.happened", 1)(type("Nowhere", (tessera_events.EventData,), {}))
    assert lookup("identity.user.created", 99) is None


def test_asyncapi_document_lists_every_event_with_its_stream():
    document = build_document()
    assert document["asyncapi"].startswith("3.")
    for name in current_schemas():
        type_ = name.rsplit(".v", 1)[0]
        assert name in document["components"]["messages"]
        assert STREAMS[type_.split(".")[0]].name in document["channels"][type_]["description"]
