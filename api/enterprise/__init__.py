"""The enterprise console: dispatch board, manual assignment, worker profiles and schedule
requests (the enterprise and worker tables are ``api.tenants``)."""
