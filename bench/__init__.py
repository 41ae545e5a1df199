"""Benchmarks for connector-telemetry; run ``python -m bench`` (see bench/README.md)."""
