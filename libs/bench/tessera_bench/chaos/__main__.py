"""`make chaos`: load the whole stack while each service, nats-server and PostgreSQL is killed
(SIGKILL) and restarted, one at a time; check what must hold after each round; print the table.

    python -m tessera_bench.chaos [--faults identity,nats-server,...] [--before 3] [--down 2]
                                  [--after 4] [--workers 4] [--keep]

Exit status 1 when any promise is broken (the lines under the table say which).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .harness import ChaosStack
from .run import Settings, chaos, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default="", help="comma-separated; default: none, then every one")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the kill")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the target stays down")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of load after recovery")
    parser.add_argument("--workers", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data and logs folder")
    args = parser.parse_args(argv)
    settings = Settings(args.before, args.down, args.after, args.workers, args.seed)
    print("starting PostgreSQL, nats-server and every service", flush=True)
    with ChaosStack.start() as stack:
        stack.owns_root = not args.keep
        faults = [f for f in args.faults.split(",") if f] or ["none", *stack.faults]
        unknown = set(faults) - {"none", *stack.faults}
        if unknown:
            parser.error(f"unknown faults {sorted(unknown)}; known: {stack.faults}")
        print(f"logs: {stack.logs_dir()}", flush=True)
        reports = asyncio.run(chaos(stack, faults, settings))
    print(summary(reports))
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
