"""Scenario modules; each exposes `SCENARIOS: list[Scenario]`. Order = table order."""

from __future__ import annotations

import importlib

from tessera_bench.scenario import Scenario

# Read-mostly scenarios first: later ones create users, whose events keep consumers busy.
MODULES = ["foundation", "oidc", "identity", "rbac", "experience"]


def all_scenarios() -> list[Scenario]:
    found: list[Scenario] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"tessera_bench.scenarios.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tessera_bench.scenarios.{name}":
                continue
            raise
        found.extend(getattr(module, "SCENARIOS", []))
    return found
