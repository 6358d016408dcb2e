"""Rpc contracts that name their tenant: the caller always says which one."""

import importlib
import pkgutil

import msgspec
import pytest

import tessera_events.contracts
from tessera_events.rpc import RpcOperation


def _operations() -> list[RpcOperation]:
    found = []
    for module in pkgutil.iter_modules(tessera_events.contracts.__path__):
        contracts = importlib.import_module(f"tessera_events.contracts.{module.name}")
        found += [value for value in vars(contracts).values() if isinstance(value, RpcOperation)]
    return found


NAMING_THEIR_TENANT = sorted(
    {op.request for op in _operations()
     if any(field.name == "tenant_id" for field in msgspec.structs.fields(op.request))},
    key=lambda struct: struct.__name__)


def test_the_operations_are_found():
    assert len(_operations()) >= 20 and len(NAMING_THEIR_TENANT) >= 15


@pytest.mark.parametrize("request_type", NAMING_THEIR_TENANT, ids=lambda struct: struct.__name__)
def test_a_request_that_names_its_tenant_cannot_leave_it_out(request_type):
    # A default ("default") answered a caller of another tenant that forgot it for the default
    # tenant: the server takes a named tenant over the caller's header (tessera_kit.rpc).
    (tenant,) = [field for field in msgspec.structs.fields(request_type) if field.name == "tenant_id"]
    assert tenant.required, f"{request_type.__name__}.tenant_id has a default"


def test_a_request_without_its_tenant_is_refused_on_the_wire():
    from tessera_events.contracts.identity import FindUserRequest

    with pytest.raises(msgspec.ValidationError, match="missing required field `tenant_id`"):
        msgspec.json.decode(b'{"by": "id", "value": "u1"}', type=FindUserRequest)
