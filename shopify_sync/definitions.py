"""Code location entry point: ``[tool.dg]`` (``dg check defs``, ``dg dev``), ``[tool.dagster]``
and ``workspace.yaml`` (``dagster dev``) all load ``defs`` from here.

Lazy, as ``@dg.definitions`` intends: importing this module builds nothing; Dagster's
loader calls ``defs()`` and gets the definitions for the environment's settings.
"""

import dagster as dg

from shopify_sync.defs import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
