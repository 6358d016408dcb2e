"""The dispatcher's settings: the kit's, plus how deliveries are made."""

from __future__ import annotations

from tessera_kit.config import ServiceSettings, env_name


class DispatcherSettings(ServiceSettings, frozen=True, kw_only=True, rename=env_name):
    # Hook URLs on loopback, private, link-local or metadata addresses: refused unless true
    # (`make run` and the tests set it so local receivers work; production never should).
    webhooks_allow_private: bool = False
    # One attempt's limit (Logto: 10 s).
    webhooks_timeout_seconds: float = 10.0
    # A claimed delivery is another replica's to retry once its lease has run out (a crash
    # mid-request). Longer than the timeout, so a live request is never sent twice.
    webhooks_lease_seconds: float = 30.0
    # Requests in flight per hook in one process: a slow receiver holds only its own slots.
    # Enough for a busy hook to keep up (at 200 deliveries/s a slot must turn in 80 ms).
    webhooks_per_hook_concurrency: int = 16
    # Requests in flight in one process, all hooks together (also the HTTP connection limit):
    # it takes this many / per-hook hanging receivers to hold up the others.
    webhooks_max_in_flight: int = 512
    # How often the scheduler reads its clock for the next due delivery, and looks again for
    # one that is due but was not claimed (a lease running out elsewhere) or while attempts of
    # its own are in flight...
    webhooks_poll_seconds: float = 1.0
    # ...and the longest it goes without looking (a new delivery comes with a NOTIFY): longer
    # than `db_idle_seconds`, so at rest the pool lets its idle connection go (a PostgreSQL
    # backend, ~2 MB).
    webhooks_idle_poll_seconds: float = 600.0
    # A hook whose deliveries have only failed for this long is disabled (Svix: 5 days).
    webhooks_disable_after_seconds: float = 5 * 86400.0
