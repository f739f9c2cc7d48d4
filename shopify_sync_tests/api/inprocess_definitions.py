"""The project's code location with the in-process executor, for ``test_launch.py``.

The default multiprocess executor starts one Python process per step; on a shared
2-core CI machine that is most of a run's time. The executor is deployment
configuration, so swapping it keeps the job, assets, checks and tags under test.
"""

import dagster as dg

from shopify_sync.defs import build_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(build_definitions(), dg.Definitions(executor=dg.in_process_executor))
