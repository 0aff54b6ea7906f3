"""Tenants: the enterprises and their workers (tables only; the console is api.enterprise)."""
