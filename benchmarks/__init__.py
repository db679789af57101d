"""Benchmarks: each `bench_*.py` module here exposes `run() -> dict`; `python -m benchmarks.run` runs them all."""
