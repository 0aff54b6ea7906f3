"""Suite-wide settings only; fixtures live next to the tests that use them."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Deterministic examples in CI so a red run can be reproduced exactly.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
