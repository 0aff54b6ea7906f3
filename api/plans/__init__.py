"""Day plans: teams, planned routes per worker, re-plans, repairs and pins (staff)."""
