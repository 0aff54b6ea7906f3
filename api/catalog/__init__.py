"""Service categories, services, service areas, hot services and search."""
