"""Orders: quote, slots, booking with worker reservations, the state machine, history."""
