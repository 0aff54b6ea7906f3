"""Pure dispatch core: worker index, candidates, cost model, matching and scheduling.

`dispatch.match` is the production entry point for batch matching; the API's
dispatcher and the simulator both resolve it at call time, so one patch sees
every caller.
"""

from dispatch.assign import match

__all__ = ["match"]
