"""Pure dispatch core: worker index, candidates, cost model, matching and scheduling."""
