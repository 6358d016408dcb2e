"""Two replicas of every service behind the gateway, the short version of `make chaos-replicas`
(tessera_bench.chaos.replicas): under the chaos load, one replica of each service in turn (its
outbox relay's leader) is SIGKILLed and started again. Only requests in flight at a kill may
fail; nothing acknowledged is lost, every event is published once and applied once by each
consumer; the relays and timed jobs have one leader at a time, and the leadership of every
relay moves to the surviving replica.

Its own PostgreSQL and nats-server, as test_chaos.py. The restarts overlap the next rounds
(`wait_each=False`) to keep it short; `make chaos-replicas` waits for each.
"""

from __future__ import annotations

import pytest

from tessera_bench.chaos.harness import GATEWAY, ChaosStack
from tessera_bench.chaos.replicas import RELAY, RELAY_SERVICES, replica_chaos
from tessera_bench.chaos.run import Settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def replica_stack():
    stack = ChaosStack.start(replicas=2)  # in a temp folder of its own, removed by stop()
    yield stack
    stack.stop()


@pytest.mark.timeout(600)
async def test_a_replica_of_each_service_killed_in_turn_costs_only_its_requests_in_flight(replica_stack):
    services = [spec.name for spec in replica_stack.services.services if spec.name != GATEWAY]
    assert all(len(replica_stack.services.replica_names(name)) == 2 for name in services)
    before = replica_stack.service_pids()
    report = await replica_chaos(replica_stack, services, Settings(before=1.0, down=0.5, after=1.0, workers=3),
                                 wait_each=False)
    print(report.summary())

    after = replica_stack.service_pids()
    killed = [r.fault for r in report.rounds]
    assert sorted(replica_stack.services.spec(name).name for name in killed) == sorted(services)
    assert [name for name in killed if after[name] == before[name]] == [], report.summary()
    assert all(after[name] == before[name] for name in before if name not in killed)  # nothing else died
    assert sum(r.requests for r in report.rounds) > 0 and all(r.recovery is not None for r in report.rounds), \
        report.summary()
    assert (report.checks.events_lost, report.checks.duplicates, report.checks.dead_letters) == (0, 0, 0), \
        report.summary()
    # The gateway did send requests to the surviving replicas, and every relay changed hands.
    assert report.gateway_failovers > 0, report.summary()
    for service in RELAY_SERVICES & set(services):
        assert len(report.leaders_seen.get((service, RELAY), [])) >= 2, report.summary()
    assert report.violations == [], report.summary()
