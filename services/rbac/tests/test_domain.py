"""Rules of resources and roles (no I/O)."""

from tessera_rbac.resources.domain import (
    UpdateResource,
    changes_of,
    has_whitespace,
    is_management_api,
    management_api_indicator,
)
from tessera_rbac.roles.domain import is_internal, unique_in_order


def test_management_api_is_recognised_by_its_fixed_indicator():
    assert management_api_indicator("default") == "https://default.logto.app/api"
    assert is_management_api("https://default.logto.app/api", "default")
    assert not is_management_api("https://default.logto.app/api", "other")
    assert not is_management_api("https://api.example.com", "default")


def test_scope_names_refuse_any_whitespace():
    assert has_whitespace("read users") and has_whitespace("read\tusers") and has_whitespace("a\u00a0b")
    assert not has_whitespace("read:users")


def test_patch_changes_are_the_given_fields_that_differ():
    current = {"name": "API", "accessTokenTtl": 3600}
    columns = {"name": "name", "access_token_ttl": "accessTokenTtl"}
    assert changes_of(UpdateResource(name="API"), current, columns) == {}
    assert changes_of(UpdateResource(access_token_ttl=60), current, columns) == {"access_token_ttl": 60}


def test_internal_roles_and_id_lists():
    assert is_internal("#internal:admin") and not is_internal("admin") and not is_internal("x#internal:")
    assert unique_in_order(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]
