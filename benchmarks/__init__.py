"""The project's benchmarks: run each from the repository root as ``python -m benchmarks.<name>``.

Shared measuring helpers (machine description, peak memory, device synchronisation, the default random model) are
in :mod:`benchmarks.common`; the figures they produce go to ``docs/benchmarks.md`` and ``docs/performance.md``.
"""
