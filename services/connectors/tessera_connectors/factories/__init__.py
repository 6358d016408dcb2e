"""The installed connector factories, by id (Logto's `loadConnectorFactories`)."""

from __future__ import annotations

from tessera_connectors.factories import github, google, mock, oauth2, oidc, sendgrid, smtp, twilio
from tessera_connectors.factories.base import Factory
from tessera_connectors.settings import ConnectorsSettings

# Logto-cloud demo factories: never created, fetched or patched through the API (§7.1).
DEMO_FACTORY_IDS = frozenset({"logto-sms", "logto-email", "logto-social-demo"})


def installed(settings: ConnectorsSettings) -> dict[str, Factory]:
    factories = [smtp.build(), sendgrid.build(), twilio.build(), oidc.build(), oauth2.build(),
                 github.build(), google.build()]
    if settings.mock_connectors:
        factories.extend(mock.build_all())
    by_id: dict[str, Factory] = {}
    for factory in factories:
        if factory.id in by_id:  # a packaging mistake, not a request's
            raise RuntimeError(f"two connector factories have the id {factory.id}")
        by_id[factory.id] = factory
    return by_id
