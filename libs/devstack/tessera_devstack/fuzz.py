"""The schema fuzz run: schemathesis against the gateway's `/api/swagger.json`.

Every operation of the merged document, in every phase schemathesis has (the document's
examples, its coverage of boundaries, random data, and stateful sequences along the links it
infers), as an administrator. The checks: no 5xx, every status and content type and body as
documented, every 4xx in the surface's error format (`fuzz_checks.py`). `run_fuzz` returns the
schemathesis report and a tally of answers by status; `table` prints them for the note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance", "logto_error_format")
PHASES = ("examples", "coverage", "fuzzing", "stateful")


@dataclass
class FuzzResult:
    exit_code: int
    report: dict
    statuses: dict[str, int]
    output: str

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def stateful_summary(self) -> str:
        """Schemathesis prints the stateful phase's scenarios and links only in its output."""
        found = {}
        for line in self.output.splitlines():
            line = line.strip()
            for key in ("Scenarios:", "API Links:"):
                if line.startswith(key):
                    found[key] = line[len(key):].strip()
        if not found:
            return "not run"
        return f"{found.get('Scenarios:', '?')} scenarios; links {found.get('API Links:', '?')}"

    @property
    def failures(self) -> list[dict]:
        return list(self.report.get("failures") or [])

    @property
    def errors(self) -> list[dict]:
        return list(self.report.get("errors") or [])


def run_fuzz(base_url: str, headers: dict[str, str], work_dir: Path, *, max_examples: int,
             seed: int | None = None, max_time: float | None = None,
             phases: tuple[str, ...] = PHASES, workers: int = 2,
             stateful_examples: int | None = None) -> FuzzResult:
    """`stateful_examples`: scenarios of the stateful phase (default: at least 30, for even a
    short run walks some of the document's links: create a role, then read, change, delete it)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    report_path, tally_path = work_dir / "report.json", work_dir / "statuses.json"
    # The stateful phase follows the document's own links (the gateway's, from each create to
    # what it created); schemathesis' inferred ones guess fields such as `roleId` that no
    # answer has, and were never usable.
    config = work_dir / "schemathesis.toml"
    config.write_text("[phases.stateful.inference]\nalgorithms = []\n[phases.stateful.generation]\n"
                      f"max-examples = {stateful_examples or max(30, max_examples)}\n")
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"{base_url}/api/swagger.json",
        "--url", base_url, "--checks", ",".join(CHECKS), "--phases", ",".join(phases),
        "--max-examples", str(max_examples), "--workers", str(workers),
        "--request-timeout", "30", "--suppress-health-check", "all", "--no-color",
        "--report", "json", "--report-json-path", str(report_path),
        "--report-dir", str(work_dir),
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    if seed is not None:
        command += ["--seed", str(seed)]
    if max_time is not None:
        command += ["--max-time", str(int(max_time))]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tessera_devstack.fuzz_checks",
           "TESSERA_FUZZ_TALLY": str(tally_path)}
    done = subprocess.run(command, env=env, cwd=work_dir, capture_output=True, text=True, check=False)
    (work_dir / "output.txt").write_text(done.stdout + done.stderr)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    statuses = json.loads(tally_path.read_text()) if tally_path.exists() else {}
    return FuzzResult(done.returncode, report, statuses, done.stdout + done.stderr)


def table(title: str, result: FuzzResult) -> str:
    """A Markdown table: operations, requests, answers by status class, failures by kind."""
    operations = result.report.get("operations") or {}
    by_class: dict[str, int] = {}
    for status, count in result.statuses.items():
        key = f"{status[0]}xx"
        by_class[key] = by_class.get(key, 0) + count
    rows = [
        ("operations tested", f"{operations.get('tested', 0)} of {operations.get('selected', 0)}"),
        ("test cases", str((result.report.get("test_cases") or {}).get("generated", 0))),
        ("requests", str(result.requests)),
        ("answers by class", ", ".join(f"{k}: {v}" for k, v in sorted(by_class.items()))),
        ("answers by status", ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items()))),
        ("stateful", result.stateful_summary()),
        ("running time", f"{result.report.get('running_time', 0):.0f} s"),
    ]
    for failure in result.failures:
        where = f"{failure['count']} in {len(failure['operations'])} ops"
        rows.append((f"failure: {failure['title']}", where))
    for error in result.errors:
        rows.append((f"error: {error['title']}", str(error["count"])))
    if not result.failures and not result.errors:
        rows.append(("failures", "0"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{title}", f"| {'what'.ljust(width)} | value |", f"| {'-' * width} | ----- |"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - `python -m tessera_devstack.fuzz URL` against a running stack
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--header", action="append", default=["development-user-id: fuzz-admin"])
    parser.add_argument("--dir", default=".tessera/fuzz")
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    result = run_fuzz(args.url, {k.strip(): v.strip() for k, v in headers.items()}, Path(args.dir),
                      max_examples=args.max_examples)
    print(result.output[-20000:])
    print(table("schema fuzz", result))
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
