"""Diagnostics of this project's own machines (not installed with the package): run from a clone, e.g.
``python -m benchmarks.steadiness``."""
