"""Customer tracking of an active order over WebSocket and SSE."""
