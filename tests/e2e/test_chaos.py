"""Chaos under load, the short version of `make chaos`: registrations, sign-ins, tokens, role
changes and user updates through the gateway while a service, nats-server and PostgreSQL are
each SIGKILLed and restarted, and the fork server the services were forked from (every service
at once, started again by the Supervisor). After each round nothing acknowledged is missing, no event is
lost or applied twice, no replaced password signs anyone in, and clients saw only 503s in the
contract's format, only during the outage (tessera_bench.chaos.run).

It runs its own PostgreSQL and nats-server (the session's are shared by every test, and this
test kills them).
"""

from __future__ import annotations

import os

import pytest

from tessera_bench.chaos.harness import FORK_SERVER, NATS, POSTGRES, ChaosStack
from tessera_bench.chaos.run import Settings, chaos, summary

pytestmark = pytest.mark.e2e

# One service (audit-log: it consumes every stream, so its restart tests redelivery
# everywhere; the load never calls it, so no request is in flight through the gateway when it
# dies; `make chaos` kills every service), the fork server when the services are forked (all of
# them at once, the gateway too), then the two servers every service depends on.
SERVICE = os.environ.get("TESSERA_CHAOS_SERVICE", "audit-log")


@pytest.fixture(scope="module")
def chaos_stack():
    stack = ChaosStack.start()  # in a temp folder of its own, removed by stop()
    yield stack
    stack.stop()


def _pids(chaos_stack) -> dict[str, int | None]:
    return {**chaos_stack.service_pids(), NATS: chaos_stack.nats.process.pid,
            POSTGRES: chaos_stack.postgres.process.pid,
            FORK_SERVER: chaos_stack.services.supervisor.fork_server_pid}


@pytest.mark.timeout(600)
async def test_nothing_lost_or_doubled_while_each_part_is_killed(chaos_stack):
    FAULTS = [SERVICE, *([FORK_SERVER] if FORK_SERVER in chaos_stack.faults else []), NATS, POSTGRES]
    before = _pids(chaos_stack)
    reports = await chaos(chaos_stack, FAULTS, Settings(before=1.5, down=1.0, after=1.5, workers=3))
    print(summary(reports))

    after = _pids(chaos_stack)
    assert [fault for fault in FAULTS if after[fault] == before[fault]] == []  # each was killed
    for report in reports:
        assert report.recovery is not None, summary(reports)
        assert report.requests > 0 and report.failures < report.requests, summary(reports)
        assert (report.checks.events_lost, report.checks.duplicates) == (0, 0), summary(reports)
        assert report.violations == [], summary(reports)
