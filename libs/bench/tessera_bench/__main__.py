"""`make bench`: start the stack (or use a running one), drive it, print a table.

    python -m tessera_bench [--url URL] [--seconds 10] [--only TEXT] [--no-events]
                            [--users 10k,100k,1M]

`--users` adds the user-count curve (tessera_bench.curve): four user reads measured with
the user table at each size, seeded in SQL, before the other scenarios.

`--only "email code"` runs the sign-in by e-mail code alone (a local SMTP server, started
by the bench, behind the `simple-mail-transfer-protocol` connector).

The client-credentials row is measured A/B/A beside panva's bare oidc-provider 9 (the engine
inside Logto; in memory, ES384, one Node process, installed with npm into a cache folder on
first use — tessera_bench.bare_provider): ours, bare, ours again, same request, same wrk load,
then a line "client credentials: X.XX× bare oidc-provider" with the CPU each spent per token.
Without node or npm the bare row says skipped and why. `--only client-credentials` runs the three.

`--only webhook` runs the webhook row alone (sign-in events published at 500/s, or
`--webhook-rate`, → the hook's POST at a local receiver).

Without --url it starts PostgreSQL, NATS and every installed service on free ports
(as `make run` does, in a temporary folder). Load comes from wrk in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tessera_bench import curve
from tessera_bench.events import measure_event_latency
from tessera_bench.scenario import BenchContext, Request, Scenario
from tessera_bench.scenarios import all_scenarios
from tessera_bench.webhooks import measure_webhook_latency
from tessera_bench.wrk import Result, ensure_wrk, run_wrk
from tessera_bench.limits import BENCH_RATE_LIMITS

# The targets of the project (2 cores, load generator included).
TARGETS = {
    "client-credentials": "≥ 1000/s",
    "GET /api/applications": "≥ 1500/s",
    "discovery": "≥ 4000/s",
    "password sign-in": "≥ 30/s",
}


def _target_for(name: str) -> str:
    return next((t for key, t in TARGETS.items() if key in name), "")


def settle(pids: list[int], *, quiet_percent: float = 25.0, limit_seconds: float = 30.0) -> None:
    """Wait until the stack is idle again (consumers done with the last scenario's events),
    so each scenario is measured on a quiet machine."""
    processes = list(_with_children(pids).values())
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        for p in processes:
            with contextlib.suppress(psutil.Error):
                p.cpu_percent(None)
        time.sleep(1.0)
        busy = 0.0
        for p in processes:
            with contextlib.suppress(psutil.Error):
                busy += p.cpu_percent(None)
        if busy < quiet_percent:
            return


def _with_children(pids: list[int]) -> dict[int, psutil.Process]:
    """These processes and their descendants, each once (a forked service is both listed and
    a child of the listed fork server)."""
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                found.setdefault(p.pid, p)
    return found


def resident_mb(pids: list[int]) -> tuple[float, float]:
    """(PSS, RSS) in MB of these processes and their children. PSS counts a page shared
    by n processes as 1/n in each, so its sum is what the processes hold together; summed
    RSS counts shared pages (PostgreSQL's shared buffers, the Python binary) again and
    again."""
    pss = rss = 0
    for p in _with_children(pids).values():
        with contextlib.suppress(psutil.Error):
            info = p.memory_full_info()
            pss, rss = pss + info.pss, rss + info.rss
    return pss / 2**20, rss / 2**20


def _label(process: psutil.Process) -> str:
    """A short name for a watched process: the service of `tessera_kit.serve tessera_x.main:app`,
    the fork server the services are forked from, else the executable's name (postgres,
    nats-server, node)."""
    with contextlib.suppress(psutil.Error):
        cmdline = process.cmdline()
        app = next((a for a in cmdline if a.startswith("tessera_") and ":" in a), None)
        if app:
            return app.split(".")[0].removeprefix("tessera_")
        if "tessera_kit.forkserver" in cmdline:
            return "fork-server"
        return process.name()
    return str(process.pid)


def cpu_by_process(pids: list[int]) -> dict[str, float]:
    """utime + stime (/proc/<pid>/stat) so far of these processes with their children, by name;
    each process once (a forked service is listed, and a child of the listed fork server)."""
    totals: dict[str, float] = {}
    seen: set[int] = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            label = _label(root)
            for p in [root, *root.children(recursive=True)]:
                if p.pid in seen or (p.pid != pid and p.pid in pids):
                    continue
                seen.add(p.pid)
                with contextlib.suppress(psutil.Error):
                    times = p.cpu_times()
                    totals[label] = totals.get(label, 0.0) + times.user + times.system
    return totals


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_process(pids).values())


@dataclass
class Measured:
    result: Result
    # CPU milliseconds per request: of the server's processes (None when they are not ours to
    # watch: --url), and of wrk.
    server_cpu_ms: float | None
    wrk_cpu_ms: float
    by_process: dict[str, float]  # the server's CPU ms per request, per process name
    # Cores the rest of the machine kept busy meanwhile (other work, and with --url our stack):
    # how much the figure was measured under contention.
    others_cores: float = 0.0


class WrongAnswerRow(Exception):
    """The server answered the scenario's request wrongly before or after the run."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once subprocess.run reaped it
    return usage.ru_utime + usage.ru_stime


async def measure(client: httpx.AsyncClient, url: str, scenario: Scenario, request: Request, *,
                  seconds: int, pids: list[int], warmup: int = 2) -> Measured:
    """Check one answer, warm up, run wrk for `seconds` reading the CPU of `pids` around it,
    check one answer again."""
    await _check(client, url, scenario, request, "before the run")
    run_wrk(url, request, seconds=warmup, connections=scenario.connections)
    server_before, wrk_before, machine_before = cpu_by_process(pids), _children_cpu(), _machine_busy()
    began = time.monotonic()
    result = run_wrk(url, request, seconds=seconds, connections=scenario.connections)
    elapsed = time.monotonic() - began
    server_after, wrk_after, machine_after = cpu_by_process(pids), _children_cpu(), _machine_busy()
    await _check(client, url, scenario, request, "after the run")
    per = 1000 / max(result.requests, 1)
    by_process = {name: (spent - server_before.get(name, 0.0)) * per for name, spent in server_after.items()}
    server_cores = sum(server_after.values()) - sum(server_before.values())
    others = (machine_after - machine_before - server_cores - (wrk_after - wrk_before)) / elapsed
    return Measured(result, sum(by_process.values()) if pids else None, (wrk_after - wrk_before) * per,
                    by_process, others_cores=max(others, 0.0))


def _machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy so far (not idle, not waiting)."""
    times = psutil.cpu_times()  # Linux: user includes guest; steal is another machine's
    return times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)


async def _check(client, url, scenario, request, when) -> None:
    if scenario.check is None:
        return
    try:
        await scenario.check(client, url, request)
    except Exception as exc:
        raise WrongAnswerRow(f"{when}: {exc}") from exc


def measured_row(name: str, measured: Measured) -> tuple[str, str, str, str, str, str]:
    result = measured.result
    cpu = "not watched (--url)"
    if measured.server_cpu_ms is not None:
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(measured.by_process.items(),
                                                                    key=lambda i: -i[1]) if ms >= 0.005)
        cpu = f"{measured.server_cpu_ms:.2f} ms ({parts})"
    print(f"  {result.requests_per_second:,.0f}/s, CPU per request: server {cpu}, "
          f"wrk {measured.wrk_cpu_ms:.2f} ms; other work kept {measured.others_cores:.1f} of "
          f"{psutil.cpu_count()} cores busy", file=sys.stderr, flush=True)
    return (name, f"{result.requests_per_second:,.0f}/s", f"{result.p50_ms:.1f}", f"{result.p99_ms:.1f}",
            str(result.errors), _target_for(name))


async def measure_beside_baseline(client: httpx.AsyncClient, ctx: BenchContext, scenario: Scenario,
                                  request: Request, *, seconds: int, watched: list[int],
                                  warmup: int = 2) -> tuple[list[tuple], list[str]]:
    """Ours, the baseline, ours again (A/B/A, the same request and load), then the ratio of
    ours (the mean of both) to the baseline. Rows and the lines for under the table."""
    baseline = scenario.baseline
    rows: list[tuple] = []
    ours = [await measure(client, ctx.url, scenario, request, seconds=seconds, pids=watched,
                          warmup=warmup)]
    rows.append(measured_row(scenario.name, ours[0]))
    settle(watched)
    print(f"• {baseline.name}", file=sys.stderr, flush=True)
    try:
        with baseline.running(ctx) as (url, pids):
            bare = await measure(client, url, scenario, request, seconds=seconds, pids=pids, warmup=warmup)
    except Exception as exc:  # no node, install failed, wrong answers: said, not fatal
        why = str(exc) or type(exc).__name__
        status = "wrong answer" if isinstance(exc, WrongAnswerRow) else "skipped"
        print(f"  {status}: {why}", file=sys.stderr, flush=True)
        rows.append((baseline.name, status, "", "", why[:60], ""))
        return rows, [f"{baseline.ratio_of}: no ratio, {baseline.name} {status}: {why}"]
    rows.append(measured_row(baseline.name, bare))
    settle(watched)
    print(f"• {scenario.name} (again)", file=sys.stderr, flush=True)
    try:
        ours.append(await measure(client, ctx.url, scenario, request, seconds=seconds, pids=watched,
                                  warmup=warmup))
    except WrongAnswerRow as exc:
        print(f"  wrong answer {exc}", file=sys.stderr, flush=True)
        rows.append((f"{scenario.name} (again)", "wrong answer", "", "", str(exc)[:60], ""))
        return rows, [f"{baseline.ratio_of}: no ratio, ours answered wrongly: {exc}"]
    rows.append(measured_row(f"{scenario.name} (again)", ours[1]))

    mean = sum(m.result.requests_per_second for m in ours) / len(ours)
    ratio = mean / bare.result.requests_per_second
    rows.append((f"{baseline.ratio_of} ÷ {baseline.ratio_to}", f"{ratio:.2f}×", "", "", "",
                 baseline.ratio_target))
    line = (f"{baseline.ratio_of}: {ratio:.2f}× {baseline.ratio_to}"
            f" (ours {' and '.join(f'{m.result.requests_per_second:,.0f}/s' for m in ours)}"
            f" around bare {bare.result.requests_per_second:,.0f}/s)")
    if all(m.server_cpu_ms for m in [*ours, bare]):
        # When other work keeps the machine busy, the kernel (autogroup) shares CPU per session:
        # each of our services, PostgreSQL and NATS has one, Node has one, so req/s flatters us
        # there. CPU per token does not depend on the share.
        cpu_ratio = bare.server_cpu_ms / (sum(m.server_cpu_ms for m in ours) / len(ours))
        spent = " and ".join(f"{m.server_cpu_ms:.2f}" for m in ours)
        line += (f"; by CPU per token {cpu_ratio:.2f}×: ours {spent} ms (every service, PostgreSQL,"
                 f" NATS), bare {bare.server_cpu_ms:.2f} ms (node); wrk {ours[0].wrk_cpu_ms:.2f} ms"
                 f" beside ours, {bare.wrk_cpu_ms:.2f} ms beside bare")
    busiest = max(m.others_cores for m in [*ours, bare])
    if busiest >= 0.3:
        line += (f" — other work kept up to {busiest:.1f} cores busy during these runs: req/s"
                 f" is skewed, CPU per token is not")
    errors = {"ours": sum(m.result.errors for m in ours), "bare": bare.result.errors}
    if any(errors.values()):
        line += f" — not comparable: error answers {errors}"
    return rows, [line]


def memory_by_process(named: dict[str, int]) -> str:
    """`name PSS` for each named process (the rest of its tree folded in, e.g. PostgreSQL's
    backends), the processes of an earlier name not counted again under a later one."""
    seen: set[int] = set()
    parts = []
    for name, pid in named.items():
        own = {p: proc for p, proc in _with_children([pid]).items() if p not in seen
               and (p == pid or p not in named.values())}
        seen.update(own)
        pss = 0
        for proc in own.values():
            with contextlib.suppress(psutil.Error):
                pss += proc.memory_full_info().pss
        parts.append(f"{name} {pss / 2**20:.1f}" + (f" ({len(own)} processes)" if len(own) > 1 else ""))
    return ", ".join(parts)


@contextlib.contextmanager
def local_stack():
    from tessera_devstack.admin_client import AdminClient
    from tessera_devstack.identities import service_identities
    from tessera_devstack.nats import NatsAccess, start_nats
    from tessera_devstack.ports import free_ports
    from tessera_devstack.postgres import connections_for, create_database, start_postgres
    from tessera_devstack.services import ServiceStack, available_services
    from tessera_devstack.supervisor import Supervisor

    root = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, True)
        services = available_services()
        postgres = start_postgres(root / "postgres", log_path=root / "postgres.log", fast_unsafe=True,
                                  max_connections=connections_for([s.name for s in services]))
        cleanup.callback(postgres.stop)
        # As `make run`: each service on its own NATS user and PostgreSQL role; the bench's
        # own clients (events, rpc) use the admin.
        access = NatsAccess.for_stack(["bench"])
        nats = start_nats(root / "nats", log_path=root / "nats.log", access=access)
        cleanup.callback(nats.stop)
        database = create_database(postgres.dsn, "bench")
        identities = service_identities([s.name for s in services], admin_dsn=database,
                                        nats_access=access, nats_url=nats.url, namespace="bench")
        supervisor = Supervisor(log_dir=root / "logs", echo=False)
        cleanup.callback(supervisor.close)
        admin = AdminClient.generate()
        stack = ServiceStack(
            supervisor=supervisor, services=services,
            ports=dict(zip([s.name for s in services], free_ports(len(services)))),
            database_url=database, nats_url=nats.admin_url, namespace="bench",
            log_level="WARNING", admin_client=admin, extra_env={"TESSERA_DEV_AUTH": "true", **BENCH_RATE_LIMITS},
            service_env=identities.env,
        )
        cleanup.callback(stack.stop_all)
        stack.start_all()
        supervisor.release_fork_server()  # as `make run` does
        # The fork server too: after its release, what it still holds (tessera_kit.forkserver).
        server = supervisor.fork_server_pid
        pids = ([server] if server else []) + [supervisor.get(n).pid for n in stack.names]
        yield stack, admin, database, nats.admin_url, pids, [postgres.process.pid, nats.process.pid]


async def run(args) -> int:
    ensure_wrk()
    rows: list[tuple[str, str, str, str, str, str]] = []
    notes: list[str] = []  # lines printed under the table
    with contextlib.ExitStack() as cleanup:
        if args.url:
            ctx = BenchContext(url=args.url, admin_client_id=os.environ.get("TESSERA_ADMIN_CLIENT_ID"),
                               admin_client_secret=os.environ.get("TESSERA_ADMIN_CLIENT_SECRET"),
                               dev_auth=bool(os.environ.get("TESSERA_DEV_AUTH")))
            database, watched = None, []
            nats_url, namespace = os.environ.get("NATS_URL"), os.environ.get("TESSERA_NAMESPACE", "")
        else:
            print("starting the stack ...", file=sys.stderr, flush=True)
            stack, admin, database, nats_url, pids, infra = cleanup.enter_context(local_stack())
            namespace = stack.env["TESSERA_NAMESPACE"]
            watched = pids + [p for p in infra if p]
            ctx = BenchContext(url=stack.url, admin_client_id=admin.id,
                               admin_client_secret=admin.secret, dev_auth=True, database_url=database)
            time.sleep(3)  # let start-up work settle before measuring idle memory
            services_pss, services_rss = resident_mb(pids)
            all_pss, all_rss = resident_mb(pids + [p for p in infra if p])
            print(f"idle memory: services {services_pss:.0f} MB PSS ({services_rss:.0f} MB summed RSS), "
                  f"with PostgreSQL and NATS {all_pss:.0f} MB PSS ({all_rss:.0f} MB summed RSS)",
                  file=sys.stderr)
            server = stack.supervisor.fork_server_pid
            named = {**({"fork-server": server} if server else {}),
                     **{n: stack.supervisor.get(n).pid for n in stack.names},
                     "postgres": infra[0], "nats": infra[1]}
            print(f"  MB PSS by process: {memory_by_process(named)}", file=sys.stderr)
            rows.append(("idle memory, all processes (PSS)", f"{all_pss:.0f} MB", "", "",
                         f"RSS sum {all_rss:.0f} MB", "≤ 300 MB"))
        async with httpx.AsyncClient(timeout=30) as client:
            if args.users:  # first: the other scenarios add users of their own
                points = await curve.measure_curve(ctx, client, args.users, seconds=args.seconds,
                                                   settle=lambda: settle(watched))
            for scenario in all_scenarios():
                if args.only and args.only.lower() not in scenario.name.lower():
                    continue
                if args.users and scenario.name.startswith("GET /api/users like-search"):
                    continue  # the curve measures it, at each size
                print(f"• {scenario.name}", file=sys.stderr, flush=True)
                try:
                    request = await scenario.setup(ctx, client)
                except Exception as exc:  # a scenario whose service is missing is reported, not fatal
                    rows.append((scenario.name, "skipped", "", "", str(exc)[:60], _target_for(scenario.name)))
                    continue
                settle(watched)
                try:
                    if scenario.baseline is not None:
                        found, lines = await measure_beside_baseline(client, ctx, scenario, request,
                                                                     seconds=args.seconds, watched=watched)
                        rows.extend(found)
                        notes.extend(lines)
                    else:
                        rows.append(measured_row(scenario.name, await measure(
                            client, ctx.url, scenario, request, seconds=args.seconds, pids=watched)))
                except WrongAnswerRow as exc:
                    print(f"  wrong answer {exc}", file=sys.stderr, flush=True)
                    rows.append((scenario.name, "wrong answer", "", "", str(exc)[:60], _target_for(scenario.name)))
            settle(watched)
            rows.extend(await custom_benchmarks(ctx, client, args, nats_url, namespace,
                                                settle=lambda: settle(watched), watched=watched))
        if not args.no_events and database and nats_url and (not args.only or "event" in args.only):
            settle(watched)
            print("• events: committed → applied", file=sys.stderr, flush=True)
            events = await measure_event_latency(database, nats_url, rate=500, seconds=args.seconds)
            lost = events.published - events.applied
            rows.append((f"event committed → applied at {events.rate}/s", f"{events.applied} applied",
                         f"{events.p50_ms:.1f}", f"{events.p99_ms:.1f}", f"{lost} lost", "p99 < 100 ms, 0 lost"))
        if database and nats_url and (not args.only or "webhook" in args.only.lower()):
            settle(watched)
            print("• webhooks: sign-in event committed → received", file=sys.stderr, flush=True)
            async with httpx.AsyncClient(timeout=30) as client:
                hooks = await measure_webhook_latency(ctx, client, database, nats_url, namespace,
                                                      rate=args.webhook_rate, seconds=args.seconds)
            rows.append((f"sign-in → webhook received at {hooks.rate}/s", f"{hooks.received} received",
                         f"{hooks.p50_ms:.1f}", f"{hooks.p99_ms:.1f}", f"{hooks.published - hooks.received} lost",
                         "p99 < 100 ms, 0 lost"))
            print(f"  webhooks: committed → delivery row p50 {hooks.consumed_p50_ms:.1f} ms, "
                  f"p99 {hooks.consumed_p99_ms:.1f} ms; delivery row → received p50 {hooks.sent_p50_ms:.1f} ms, "
                  f"p99 {hooks.sent_p99_ms:.1f} ms (scheduling and sending)", file=sys.stderr)
    print_table(rows)
    for note in notes:
        print(note)
    if args.users:
        print()
        curve_rows = curve.curve_table(points)
        print_table(curve_rows[1:], header=curve_rows[0])
    return 0


def flow_meter(pids: list[int]):
    """For a flow row: called as its workers start, answers what to call as they end, which
    answers the CPU seconds spent meanwhile by process (cpu_by_process of `pids`) and by this
    process, the flows' load generator."""
    def start():
        before, own = cpu_by_process(pids), time.process_time()

        def stop() -> dict[str, float]:
            spent = {name: seconds - before.get(name, 0.0) for name, seconds in cpu_by_process(pids).items()}
            spent["bench (load generator)"] = time.process_time() - own
            return spent

        return stop

    return start


def flow_cpu_line(result) -> str | None:
    """The CPU per flow line of a flow row, as measured_row's for wrk rows."""
    if not result.cpu or not result.completed:
        return None
    per = {name: seconds * 1000 / result.completed for name, seconds in result.cpu.items()}
    parts = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(per.items(), key=lambda i: -i[1]) if ms >= 0.05)
    return f"  {result.per_second:,.1f}/s, CPU per flow: {sum(per.values()):.1f} ms ({parts})"


async def custom_benchmarks(ctx, client, args, nats_url, namespace, settle=None,
                            watched: list[int] | None = None) -> list[tuple]:
    """Benchmarks wrk cannot drive: multi-step flows (sign-in) and NATS rpc. A flow row also
    says the CPU each process spent per flow (with `watched`: a stack the bench started)."""
    from tessera_bench.scenarios import email_code, oidc, rbac

    rows: list[tuple] = []
    flows = [(flow, oidc.measure_flow) for flow in oidc.FLOWS]
    flows += [(flow, functools.partial(email_code.measure_flow, settle=settle)) for flow in email_code.FLOWS]
    for flow, measure_flow in flows:
        if args.only and args.only.lower() not in flow.name.lower():
            continue
        print(f"• {flow.name}", file=sys.stderr, flush=True)
        try:
            result = await measure_flow(ctx, flow, seconds=args.seconds, client=client,
                                        meter=flow_meter(watched) if watched else None)
        except Exception as exc:
            rows.append((flow.name, "skipped", "", "", str(exc)[:60], _target_for(flow.name)))
            continue
        line = flow_cpu_line(result)
        if line:
            print(line, file=sys.stderr, flush=True)
        rows.append((flow.name, f"{result.per_second:,.1f}/s", f"{result.p50_ms:.0f}", f"{result.p99_ms:.0f}",
                     str(result.errors), _target_for(flow.name)))
    for benchmark in rbac.RPC_BENCHMARKS if nats_url else []:
        if args.only and args.only.lower() not in benchmark.name.lower():
            continue
        print(f"• {benchmark.name}", file=sys.stderr, flush=True)
        try:
            result = await benchmark.run(ctx, client, nats_url, namespace, args.seconds)
        except Exception as exc:
            rows.append((benchmark.name, "skipped", "", "", str(exc)[:60], benchmark.target))
            continue
        rows.append((benchmark.name, f"{result.calls_per_second:,.0f}/s", f"{result.p50_ms:.1f}",
                     f"{result.p99_ms:.1f}", str(result.errors), benchmark.target))
    return rows


def print_table(rows, header=("scenario", "throughput", "p50 ms", "p99 ms", "errors", "target")) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tessera_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark a running stack instead of starting one")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", help="run scenarios whose name contains this text")
    parser.add_argument("--webhook-rate", type=int, default=500, metavar="PER_SECOND",
                        help="sign-in events per second for the webhook row (default 500: the target, p99 < 100 ms)")
    parser.add_argument("--no-events", action="store_true", help="skip the event latency run")
    parser.add_argument("--users", type=curve.parse_sizes, metavar="SIZES",
                        help="measure the user reads at these table sizes, e.g. 10k,100k,1M"
                             " (seeded in SQL; a million takes about a minute)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
