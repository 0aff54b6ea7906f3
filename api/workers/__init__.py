"""Workers over HTTP: presence, location pings, offers and the grab pool, the visit, the
service code; the decisions behind an offer live in ``api.dispatcher``."""
