"""Code location entry point (``workspace.yaml``, ``[tool.dagster]`` in pyproject)."""

from shopify_sync.defs import build_definitions

defs = build_definitions()
