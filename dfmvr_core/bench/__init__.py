"""Benchmarks run by ``dfmvr bench <name>`` (and the thin scripts in ``bench/``): each prints one JSON
object (name, config, machine, figures with units) and can save it as ``bench/results/<name>-<machine>.json``.
Speed and memory targets are measured here, never in timed tests."""
