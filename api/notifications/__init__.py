"""Notifications: transactional outbox, relay, in-app inbox, WeChat subscribe messages."""
