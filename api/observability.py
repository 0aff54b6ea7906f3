"""Structured JSON logs with request ids, Prometheus metrics, and the request-edge middleware."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge
from api.i18n import negotiate_locale

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def configure_logging(*, json_logs: bool = True, level: str = "INFO") -> None:
    """Configure structlog (JSON lines on stdout) with contextvars for the request id."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json_logs
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """Request counters and latency histograms in a registry owned by one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "daojia_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "daojia_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths collapse into one label so scanners cannot blow up cardinality.
    return str(path) if path else "unmatched"


class EdgeMiddleware:
    """Outermost ASGI middleware: request id, locale, body-size limit, access log, metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, default_locale: str):
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.default_locale = default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request; other scope types pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        locale = negotiate_locale(headers.get("accept-language"), self.default_locale)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["locale"] = locale
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                raw = list(message.get("headers", []))
                raw.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message["headers"] = raw
            await send(message)

        try:
            too_large = self._declared_too_large(headers)
            if too_large:
                await self._reject_too_large(scope, send_wrapper)
                return
            if scope["method"] in ("POST", "PUT", "PATCH") and "content-length" not in headers:
                # A chunked body has no declared size: buffer up to the limit, then replay it.
                body, over = await self._read_limited(receive)
                if over:
                    await self._reject_too_large(scope, send_wrapper)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status_holder["status"])).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            structlog.get_logger("api.access").info(
                "request",
                method=method,
                path=scope["path"],
                route=route,
                status=status_holder["status"],
                duration_ms=round(elapsed * 1000, 2),
                locale=locale,
            )

    def _declared_too_large(self, headers: dict[str, str]) -> bool:
        raw = headers.get("content-length")
        if raw is None:
            return False
        try:
            return int(raw) > self.max_body_bytes
        except ValueError:
            return False

    async def _read_limited(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False

    async def _reject_too_large(self, scope: Scope, send: Send) -> None:
        from starlette.requests import Request

        from api.errors import domain_error_handler

        request = Request(scope)
        response = await domain_error_handler(request, PayloadTooLarge(limit=self.max_body_bytes))
        # The client may still be sending: tell it we are not reading the rest.
        response.headers["Connection"] = "close"
        await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, downstream: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, later receives (disconnect detection) go to the real client.
        return await downstream()

    return receive
