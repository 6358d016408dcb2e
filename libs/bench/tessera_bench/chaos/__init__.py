"""Chaos under load: `python -m tessera_bench.chaos` (make chaos); see run.py."""
