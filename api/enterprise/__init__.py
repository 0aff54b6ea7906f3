"""Enterprises (tenants of workers, staff, services and areas) and their workers."""
