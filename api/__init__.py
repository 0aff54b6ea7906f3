"""daojia HTTP API (FastAPI) and the `daojia` command line."""
