"""Infrastructure below every domain: settings, db, errors, i18n, observability, live state,
broker, leases, heap tuning, the coordinate edge, migrations and the shared dependencies.

Nothing here imports a domain package (``api.auth`` ... ``api.plans``)."""
