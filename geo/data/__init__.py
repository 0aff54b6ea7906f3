"""Data files shipped with geo (see README.md here for sources and licences)."""
