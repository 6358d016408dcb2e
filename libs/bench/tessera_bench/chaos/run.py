"""Rounds of load with one crash each, the checks after each, and the table.

A round: load for `before` seconds; SIGKILL the target; `down` seconds later start it again;
wait until every service is ready (that wait, from the restart, is the recovery time); load for
`after` more seconds; stop the load, let the events settle, check.

Client errors are judged per fault window (from the kill until `GRACE` seconds after every
service is ready again): inside it, a failure must be a 503 in Logto's format (or, when the
gateway itself is down, a refused connection: nobody is there to answer; so too when the fork
server dies, which takes the gateway along); outside it, nothing may fail.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from .checks import Checker, CheckResult
from .harness import FORK_SERVER, GATEWAY, ChaosStack
from .load import Load, LoadState, Outcome

GRACE = 2.0
RECOVERY_LIMIT = 60.0  # the stated time: every service ready again within this, after a restart


@dataclass
class RoundReport:
    fault: str
    requests: int = 0
    failures: int = 0
    recovery: float | None = None
    checks: CheckResult = field(default_factory=CheckResult)
    client_violations: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[str]:
        found = [*self.client_violations, *self.checks.violations]
        if self.recovery is None:
            found.append(f"not every service was ready {RECOVERY_LIMIT:.0f}s after the restart")
        return found

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclass
class Settings:
    before: float = 3.0
    down: float = 2.0
    after: float = 4.0
    workers: int = 4
    seed: int | None = None


def classify(outcomes: list[Outcome], fault: str, window: tuple[float, float] | None) -> list[str]:
    """What clients saw that breaks the promise, one line per kind (with a count)."""
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.ok:
            continue
        inside = window is not None and outcome.ended >= window[0] and outcome.started <= window[1]
        if inside and outcome.status == 503 and outcome.logto_format:
            continue
        if inside and fault in (GATEWAY, FORK_SERVER) and outcome.status is None:
            continue
        where = "during the outage" if inside else "outside any outage"
        what = f"{outcome.status} {outcome.code or ''}".strip() if outcome.status else outcome.error.split(":")[0]
        key = f"{outcome.op}: {what} {where} (e.g. {outcome.error[:120]!r})"
        base = key.split(" (e.g.")[0]
        existing = next((k for k in kinds if k.startswith(base + " (e.g.")), None)
        kinds[existing or key] = kinds.get(existing or key, 0) + 1
    return [f"{n}× {kind}" for kind, n in kinds.items()]


async def run_round(stack: ChaosStack, load: Load, checker: Checker, fault: str, settings: Settings,
                    out: TextIO) -> RoundReport:
    report = RoundReport(fault)
    first = len(load.state.outcomes)
    task = asyncio.create_task(load.run())
    window: tuple[float, float] | None = None
    try:
        await asyncio.sleep(settings.before)
        if fault != "none":
            killed_at = time.monotonic()
            await asyncio.to_thread(stack.kill, fault)
            print(f"  killed {fault}", file=out, flush=True)
            await asyncio.sleep(settings.down)
            restarted_at = time.monotonic()
            await asyncio.to_thread(stack.restart, fault)
            took = await asyncio.to_thread(stack.wait_all_ready, RECOVERY_LIMIT)
            report.recovery = None if took is None else time.monotonic() - restarted_at
            window = (killed_at, time.monotonic() + GRACE)
            print(f"  restarted {fault}; all ready after {report.recovery}", file=out, flush=True)
        else:
            report.recovery = 0.0
        await asyncio.sleep(settings.after)
    finally:
        load.stop()
        await task
    outcomes = load.state.outcomes[first:]
    report.requests = len(outcomes)
    report.failures = sum(not o.ok for o in outcomes)
    report.client_violations = classify(outcomes, fault, window)
    settled = await checker.settle()
    print(f"  settled in {settled:.1f}s; checking", file=out, flush=True)
    report.checks = await checker.check(load.state)
    return report


def table(reports: list[RoundReport]) -> str:
    header = ("fault", "requests", "failures", "recovery s", "events lost", "duplicates applied")
    rows = [header] + [
        (r.fault, str(r.requests), str(r.failures),
         "-" if r.fault == "none" else (f"{r.recovery:.1f}" if r.recovery is not None else "NOT READY"),
         str(r.checks.events_lost), str(r.checks.duplicates))
        for r in reports
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def chaos(stack: ChaosStack, faults: list[str], settings: Settings,
                out: TextIO = sys.stdout) -> list[RoundReport]:
    admin = stack.services.admin_client
    state: LoadState = await Load.prepare(stack.url, admin.id, admin.secret)
    load = Load(stack.url, state, workers=settings.workers, seed=settings.seed)
    checker = Checker(stack.database_url, stack.nats.admin_url, stack.namespace, stack.url)
    reports = []
    for fault in faults:
        print(f"round: {fault}", file=out, flush=True)
        report = await run_round(stack, load, checker, fault, settings, out)
        reports.append(report)
        for line in report.violations:
            print(f"  VIOLATION {line}", file=out, flush=True)
    return reports


def summary(reports: list[RoundReport]) -> str:
    lines = [table(reports)]
    for report in reports:
        for violation in report.violations:
            lines.append(f"- {report.fault}: {violation}")
    return "\n".join(lines)
