"""Benchmarks, one module each, run with `daojia bench NAME` (see shared/BENCHMARKS.md)."""
