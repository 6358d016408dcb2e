"""Schemathesis against the gateway's `/api/swagger.json`, as an administrator, on a stack of its
own (`fuzz_stack`: what the run changes cannot change other tests): every operation, every
phase, no 5xx, every answer as documented, every 4xx in the surface's error format.

Bounded here (a few examples per operation); `make fuzz` runs it long (TESSERA_FUZZ_EXAMPLES,
TESSERA_FUZZ_SECONDS, TESSERA_FUZZ_PHASES, TESSERA_FUZZ_SEED). The table is printed (`-s` shows
it) and written next to the report (copied to TESSERA_FUZZ_KEEP when set).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tessera_devstack.fuzz import PHASES, run_fuzz, table

pytestmark = pytest.mark.e2e

ADMIN = {"development-user-id": "schema-fuzz-admin"}


def test_schema_fuzz_finds_nothing(fuzz_stack, tmp_path_factory):
    examples = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "3"))
    seconds = os.environ.get("TESSERA_FUZZ_SECONDS")
    seed = os.environ.get("TESSERA_FUZZ_SEED")
    phases = tuple(os.environ.get("TESSERA_FUZZ_PHASES", ",".join(PHASES)).split(","))
    work_dir = tmp_path_factory.mktemp("schema-fuzz")
    result = run_fuzz(fuzz_stack.url, ADMIN, work_dir, max_examples=examples,
                      max_time=float(seconds) if seconds else None, seed=int(seed) if seed else None,
                      phases=phases)
    summary = table(f"schema fuzz ({examples} examples per operation)", result)
    (work_dir / "table.md").write_text(summary + "\n")
    keep = os.environ.get("TESSERA_FUZZ_KEEP")  # a folder to copy the report, output and table to
    if keep:
        shutil.copytree(work_dir, keep, dirs_exist_ok=True)
    print("\n" + summary)
    assert result.report, result.output[-5000:]
    if "coverage" in phases:
        assert (result.report.get("operations") or {}).get("tested", 0) > 100, summary
    assert result.requests > 0, summary
    assert not result.failures and not result.errors, summary + "\n" + result.output[-15000:]
    assert result.exit_code == 0, result.output[-5000:]
