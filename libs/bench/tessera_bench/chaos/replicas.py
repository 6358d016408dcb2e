"""`make chaos-replicas`: two replicas of every service behind the gateway, under the chaos load
(sign-ins, registrations, tokens, user writes, role changes), while one replica of each service
in turn is SIGKILLed and started again. The promises, beyond those of `make chaos` (checks.py:
nothing acknowledged lost, every event published once and applied once by each consumer, no
dead letters, no replaced password signing in):

- clients see no failure except requests in flight at the moment of the kill (the gateway sends
  a request to the other replica when the killed one refuses the connection, and resends an
  idempotent one it hung up on; a write it may have delivered is never resent, so that one may
  fail, with a 503 in the contract's format);
- the outbox relay of each publishing service and each timed job (tessera_kit.periodic) has one
  leader at a time: the replicas' /metrics (`tessera_outbox_relay_leader`,
  `tessera_periodic_leader{job}`) are read every half second through the run, and no sample
  shows two leaders of one thing; at the end each has exactly one. The replica killed in each
  round is the relay's leader when there is one, so every round hands leadership over.

    python -m tessera_bench.chaos.replicas [--services identity,rbac] [--replicas 2]
                                           [--before 2] [--down 1] [--after 2] [--workers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .checks import PUBLISHERS, Checker, CheckResult
from .harness import GATEWAY, ChaosStack
from .load import Load, Outcome
from .run import RECOVERY_LIMIT, RoundReport, Settings, classify, table

RELAY = "outbox relay"
LEADER_METRICS = {"tessera_outbox_relay_leader": RELAY, "tessera_periodic_leader": None}  # None: by job
SAMPLE_EVERY = 0.5
HANDOVER_LIMIT = 10.0  # a relay's standby takes the lock within its poll interval (1 s)
# Services whose outbox feeds a stream: each must have one relay leader.
RELAY_SERVICES = frozenset(schema.replace("_", "-") for schema in PUBLISHERS.values())


@dataclass
class LeaderWatch:
    """Reads every replica's leadership gauges through the run (see the module's docstring)."""

    stack: ChaosStack
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    current: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (service, what) -> leaders
    ever: dict[tuple[str, str], list[str]] = field(default_factory=lambda: collections.defaultdict(list))

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not stop.is_set():
                await self.sample(client)
                try:
                    await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)
                except TimeoutError:
                    pass

    async def sample(self, client: httpx.AsyncClient) -> None:
        services = self.stack.services
        names = [n for n in services.names if services.spec(n).name != GATEWAY and n in services.supervisor.names]
        answers = await asyncio.gather(*(self._leads(client, name) for name in names))
        leaders: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        for name, leads in zip(names, answers, strict=True):
            for what in leads:
                leaders[(services.spec(name).name, what)].add(name)
        self.samples += 1
        for key, who in leaders.items():
            if len(who) > 1:
                self.violations.append(f"{key[0]}: {key[1]} led by {sorted(who)} at once")
            for name in who:
                if not self.ever[key] or self.ever[key][-1] != name:
                    self.ever[key].append(name)
        self.current = dict(leaders)

    async def _leads(self, client: httpx.AsyncClient, name: str) -> list[str]:
        try:
            response = await client.get(f"{self.stack.services.service_url(name)}/metrics")
        except httpx.HTTPError:
            return []  # down (killed, or starting): it leads nothing
        leads = []
        for family in text_string_to_metric_families(response.text):
            if family.name not in LEADER_METRICS:
                continue
            for sample in family.samples:
                if sample.value == 1:
                    leads.append(LEADER_METRICS[family.name] or f"job {sample.labels.get('job')}")
        return leads

    async def handed_over(self, service: str, former: str, limit: float) -> bool:
        """Wait (at most `limit` s) until a sample shows another replica leading the relay."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.current.get((service, RELAY), {former}) - {former}:
                return True
            await asyncio.sleep(0.1)
        return False

    def leader_of(self, service: str) -> str | None:
        """The replica leading the service's relay (else one of its jobs) in the last sample."""
        keys = sorted((k for k in self.current if k[0] == service), key=lambda k: k[1] != RELAY)
        return min(self.current[keys[0]]) if keys else None

    def final_violations(self) -> list[str]:
        found = list(self.violations)
        seen = {service for service, _ in self.ever}
        for service in sorted(RELAY_SERVICES & set(self.stack.services.names) - seen):
            found.append(f"{service}: no replica ever led its outbox relay")
        for key in sorted(self.ever):
            if len(self.current.get(key, ())) != 1:
                found.append(f"{key[0]}: {key[1]} has {len(self.current.get(key, ()))} leaders at the end")
        return found

    def handovers(self) -> list[str]:
        return [f"{service} {what}: {' -> '.join(who)}" for (service, what), who in sorted(self.ever.items())]


@dataclass
class ReplicaReport:
    rounds: list[RoundReport]
    checks: CheckResult
    leaders: list[str]  # violations
    handovers: list[str]
    samples: int
    gateway_failovers: float
    leaders_seen: dict[tuple[str, str], list[str]]  # (service, relay or job) -> leaders in turn

    @property
    def violations(self) -> list[str]:
        return [*(f"{r.fault}: {v}" for r in self.rounds for v in r.violations),
                *self.checks.violations, *self.leaders]

    @property
    def passed(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [table(self.rounds),
                 f"events lost {self.checks.events_lost}, applied twice {self.checks.duplicates},"
                 f" dead letters {self.checks.dead_letters}; gateway failovers {self.gateway_failovers:.0f};"
                 f" leadership sampled {self.samples} times:",
                 *(f"  {line}" for line in self.handovers)]
        lines += [f"- {violation}" for violation in self.violations]
        return "\n".join(lines)


def judge(outcomes: list[Outcome], kills: list[tuple[float, float]]) -> list[str]:
    """What clients saw that breaks the promise: a failure of a request that was not in flight
    at some kill, or of one that was but is no 503 in the contract's format (run.classify).
    A kill is the span from the SIGKILL's start to the process being gone: a request the client
    sent just after the kill was asked for can still meet the dying process."""
    def in_flight(outcome: Outcome, kill: tuple[float, float]) -> bool:
        return outcome.started <= kill[1] and outcome.ended >= kill[0]

    found = classify([o for o in outcomes if not any(in_flight(o, k) for k in kills)], "none", None)
    for kill in kills:
        found += classify([o for o in outcomes if in_flight(o, kill)], "replica", kill)
    return found


async def replica_chaos(stack: ChaosStack, services: list[str], settings: Settings,
                        out: TextIO = sys.stdout, *, wait_each: bool = True) -> ReplicaReport:
    """One load through every round. A round: `before` seconds, SIGKILL one replica of the
    service (its relay's leader if it has one), `down` seconds, start it again; with
    `wait_each`, wait until every replica is ready before the next round (the recovery time),
    else go on at once (the restarts overlap the next rounds: quicker, as in `make test`).
    Then `after` seconds with everything up; the events settle and are checked once, at the end."""
    admin = stack.services.admin_client
    state = await Load.prepare(stack.url, admin.id, admin.secret)
    load = Load(stack.url, state, workers=settings.workers, seed=settings.seed)
    checker = Checker(stack.database_url, stack.nats.admin_url, stack.namespace, stack.url)
    watch = LeaderWatch(stack)
    stop = asyncio.Event()
    watching = asyncio.create_task(watch.run(stop))
    rounds: list[RoundReport] = []
    kills: list[tuple[float, float]] = []  # (SIGKILL asked, process gone)
    starts: list[int] = []
    loading = asyncio.create_task(load.run())
    try:
        for service in services:
            starts.append(len(load.state.outcomes))
            await asyncio.sleep(settings.before)
            target = watch.leader_of(service) or stack.services.replica_names(service)[0]
            rounds.append(RoundReport(target))
            asked = time.monotonic()
            await asyncio.to_thread(stack.kill, target)
            kills.append((asked, time.monotonic()))
            print(f"round {service}: killed {target}", file=out, flush=True)
            await asyncio.sleep(settings.down)
            if service in RELAY_SERVICES:
                # A standby relay tries the lock once per poll (1 s): restarted sooner, the killed
                # replica could take its own lock back first and no handover would be seen.
                if not await watch.handed_over(service, target, HANDOVER_LIMIT):
                    print(f"  no other replica took {service}'s relay within {HANDOVER_LIMIT:.0f}s",
                          file=out, flush=True)
            restarted_at = time.monotonic()
            await asyncio.to_thread(stack.restart, target)
            if wait_each:
                took = await asyncio.to_thread(stack.wait_all_ready, RECOVERY_LIMIT)
                rounds[-1].recovery = None if took is None else time.monotonic() - restarted_at
                print(f"  restarted {target}; all ready after {rounds[-1].recovery}", file=out, flush=True)
        if not wait_each:
            restarted_at = time.monotonic()
            took = await asyncio.to_thread(stack.wait_all_ready, RECOVERY_LIMIT)
            for report in rounds:
                report.recovery = None if took is None else time.monotonic() - restarted_at
            print(f"  all ready {rounds and rounds[-1].recovery}s after the last restart", file=out, flush=True)
        await asyncio.sleep(settings.after)
    finally:
        load.stop()
        await loading
    for report, first, last in zip(rounds, starts, [*starts[1:], len(load.state.outcomes)], strict=True):
        outcomes = load.state.outcomes[first:last]
        report.requests = len(outcomes)
        report.failures = sum(not o.ok for o in outcomes)
        report.client_violations = judge(outcomes, kills)
    try:
        settled = await checker.settle()
        print(f"  settled in {settled:.1f}s; checking", file=out, flush=True)
        checks = await checker.check(load.state)
        async with httpx.AsyncClient(timeout=2.0) as client:
            await watch.sample(client)  # the leaders now, every replica up
    finally:
        stop.set()
        await watching
    return ReplicaReport(rounds, checks, watch.final_violations(), watch.handovers(), watch.samples,
                         await gateway_failovers(stack), dict(watch.ever))


async def gateway_failovers(stack: ChaosStack) -> float:
    """Requests the gateway moved to another replica (tessera_gateway_upstream_replica_failures)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{stack.url}/metrics")
    return sum(sample.value for family in text_string_to_metric_families(response.text)
               if family.name == "tessera_gateway_upstream_replica_failures"
               for sample in family.samples if sample.name.endswith("_total"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_bench.chaos.replicas", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="", help="comma-separated; default: every one but the gateway")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the kill")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the replica stays down")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after it is back")
    parser.add_argument("--workers", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--overlap", action="store_true",
                        help="do not wait for a restarted replica before the next round")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs folder")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("--replicas must be at least 2 (one is killed)")
    settings = Settings(args.before, args.down, args.after, args.workers, args.seed)
    print(f"starting PostgreSQL, nats-server and {args.replicas} replicas of every service", flush=True)
    with ChaosStack.start(replicas=args.replicas) as stack:
        stack.owns_root = not args.keep
        known = [s.name for s in stack.services.services if s.name != GATEWAY and not s.name.startswith(GATEWAY)]
        services = [s for s in args.services.split(",") if s] or known
        if set(services) - set(known):
            parser.error(f"unknown services {sorted(set(services) - set(known))}; known: {known}")
        print(f"logs: {stack.logs_dir()}", flush=True)
        report = asyncio.run(replica_chaos(stack, services, settings, wait_each=not args.overlap))
    print(report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
