"""Test-only stand-in for a machine without JAX: on PYTHONPATH, `import jax` fails as if it were not installed."""

raise ImportError("No module named 'jax'")
