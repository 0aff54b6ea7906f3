"""Payments: provider adapters (``providers/``: WeChat Pay v3, Alipay, sandbox), the service
(``service.py``: start a payment, take notifications, refund, cancel with refund, reconcile)
and its router (pay an order, provider notifications, the sandbox pay page, reconcile; and
the order routes whose use case is a refund: cancel, refund decision).
"""
