"""Payments: provider adapters (``providers/``: WeChat Pay v3, Alipay, sandbox), the service
(``service.py``: start a payment, take notifications, refund, reconcile) and its router
(pay an order, provider notifications, the sandbox pay page, reconcile).
"""
