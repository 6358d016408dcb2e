"""A flow row's CPU line: the meter reads real processes around the workers (the setup left
out), this process counted as the load generator; the line is ms per flow, largest first."""

import os
import subprocess
import sys

from tessera_bench.__main__ import flow_cpu_line, flow_meter
from tessera_bench.scenarios.oidc import FlowResult

# Waits for a line on stdin (the meter has started), burns 0.3 s of CPU, says so, then waits
# for its stdin to close.
BUSY = ("import sys, time\nsys.stdin.readline()\nend = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\nprint('done', flush=True)\nsys.stdin.read()")


def test_the_meter_counts_a_watched_process_and_this_one_apart():
    child = subprocess.Popen([sys.executable, "-c", BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        stop = flow_meter([child.pid])()
        child.stdin.write(b"go\n")
        child.stdin.flush()
        assert child.stdout.readline() == b"done\n"  # it has burnt its CPU, all of it metered
        spent = stop()
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    assert spent["bench (load generator)"] < 0.2  # this process waited
    assert sum(seconds for name, seconds in spent.items() if name != "bench (load generator)") >= 0.2


def test_the_line_is_ms_per_flow_largest_first():
    result = FlowResult(per_second=10.0, p50_ms=1, p99_ms=2, completed=100, errors=0,
                        cpu={"identity": 4.0, "nats-server": 1.0, "connectors": 0.001})
    assert flow_cpu_line(result) == "  10.0/s, CPU per flow: 50.0 ms (identity 40.0, nats-server 10.0)"
    assert flow_cpu_line(FlowResult(1.0, 1, 2, 0, 0, {"identity": 1.0})) is None
