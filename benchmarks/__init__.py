"""Benchmark suite for wsclient (issue 5): a near-zero-cost loopback server, one driver per
client library, and a runner that interleaves rounds and writes a Markdown table.

Run it with ``python -m benchmarks.run`` from the repository root; see ``docs/benchmarks.md``.
"""
