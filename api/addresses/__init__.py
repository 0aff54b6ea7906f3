"""Customers' saved service addresses (WGS-84 + H3 inside; GCJ-02 at the edge)."""
