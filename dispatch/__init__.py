"""Pure dispatch core: worker index, candidates, cost model, matching and scheduling.

`dispatch.match` (``dispatch.assign.match``) is the one batch-matching function that
production and the simulator run. Callers bind it when they are imported: the API's
offer flow imports it by name and the simulator's ``Policy.match`` holds it as a field
default, so patching ``dispatch.match`` afterwards changes nobody. To run another
matcher, pass it where a caller takes one (``Policy(match=...)`` in the simulator).
"""

from dispatch.assign import match

__all__ = ["match"]
