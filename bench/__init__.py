"""Benchmarks: ``python -m bench.<name> --out bench/<name>.json`` (see the Makefile's bench-* targets)."""
