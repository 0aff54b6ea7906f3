"""The adapter around the dispatch core: offers and decisions (tables), the board settings,
the offer desk store, the inputs of ``dispatch.match``, the dispatcher loop and process,
region fencing, pushing offers to workers, the recorded-day export."""
