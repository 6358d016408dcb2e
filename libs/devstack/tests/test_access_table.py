"""The access table (tessera_kit.access) says what each installed service really does."""

import importlib

import pytest

from tessera_devstack.services import SERVICES, GATEWAY
from tessera_kit.access import ACCESS, nats_permissions, service_access


def test_every_service_of_the_devstack_has_an_entry():
    assert {spec.name for spec in SERVICES} <= set(ACCESS)


@pytest.mark.parametrize("spec", [s for s in SERVICES if s.name != GATEWAY and s.is_available()],
                         ids=lambda s: s.name)
def test_the_entry_matches_the_services_spec(spec):
    service = importlib.import_module(spec.module).spec
    entry = service_access(spec.name)
    assert service.publishes == entry.publishes
    assert {(s.name, s.streams) for s in service.subscriptions} == {
        (c.subscription, c.streams) for c in entry.consumes}
    for handler in service.rpc_handlers:  # it serves only its own rpc subjects
        assert handler.operation.service == spec.name


def test_permissions_of_a_consumer_name_its_own_durables_only():
    permissions = nats_permissions(service_access("rbac"), "ns")
    publish = permissions["publish"]["allow"]
    assert "$JS.API.CONSUMER.MSG.NEXT.NS_IDENTITY.rbac-directory-identity" in publish
    assert not [p for p in publish if "audit-log" in p]
    assert "ns.rbac.>" in publish and "ns.identity.>" not in publish
    assert "$JS.API.STREAM.UPDATE.NS_IDENTITY" not in publish  # only identity updates its stream
    assert permissions["subscribe"]["allow"] == ["ns.rpc.rbac.>", "_INBOX_ns_rbac.>"]


def test_the_nats_cluster_template_in_deploy_is_the_access_table():
    """deploy/nats/tessera-authorization.conf is regenerated when the table changes:
    python -m tessera_devstack.nats_config > deploy/nats/tessera-authorization.conf"""
    import json
    from pathlib import Path

    from tessera_devstack.nats_config import authorization

    template = Path(__file__).parents[3] / "deploy" / "nats" / "tessera-authorization.conf"
    assert json.loads(template.read_text()) == authorization(environ={})


def test_the_authorization_block_hashes_given_passwords_and_adds_subscribers():
    import bcrypt

    from tessera_devstack.nats_config import authorization

    environ = {"TESSERA_SUBSCRIBERS": "crm-sync=identity.user.*",
               "TESSERA_SUBSCRIBER_CRM_SYNC_NATS_PASSWORD": "crm secret",
               "TESSERA_RBAC_NATS_PASSWORD": "rbac secret"}
    users = {u["user"]: u for u in authorization("ns", environ=environ, rounds=4)["authorization"]["users"]}
    assert bcrypt.checkpw(b"rbac secret", users["ns-rbac"]["password"].encode())
    assert bcrypt.checkpw(b"crm secret", users["ns-crm-sync"]["password"].encode())
    assert users["ns-identity"]["password"] == "BCRYPT_HASH_OF_TESSERA_IDENTITY_NATS_PASSWORD"
    crm = users["ns-crm-sync"]["permissions"]
    assert crm["subscribe"]["allow"] == ["_INBOX_ns_crm-sync.>"]
    assert "$JS.API.CONSUMER.MSG.NEXT.NS_IDENTITY.crm-sync-identity_user_any" in crm["publish"]["allow"]
