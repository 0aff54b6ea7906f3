"""Payments: provider adapters (WeChat Pay v3, Alipay, sandbox); service and router come later."""
