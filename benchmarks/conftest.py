"""Benchmarks are not tests: run them with `.venv/bin/pytest benchmarks/`."""
