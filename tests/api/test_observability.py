"""EdgeMiddleware details its cheaper per-request path must keep (api/core/observability.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from api.core.i18n import negotiate_locale
from api.core.observability import EdgeMiddleware, Metrics, configure_logging


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    yield
    configure_logging()


class _Route:
    path = "/v1/things/{thing_id}"


def _call(
    edge: EdgeMiddleware, headers: list[tuple[bytes, bytes]], status: int = 200
) -> tuple[dict[str, Any], dict[str, str]]:
    """One GET through ``edge``; returns (scope state, response headers)."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = _Route()
        seen.update(scope["state"])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    edge.app = inner
    scope = {"type": "http", "method": "GET", "path": "/v1/things/7", "headers": headers}
    asyncio.run(edge(scope, receive, send))
    start = sent[0]
    return seen, {k.decode(): v.decode() for k, v in start["headers"]}


def _edge(metrics: Metrics | None = None) -> EdgeMiddleware:
    """The middleware alone (``_call`` gives it the app behind it)."""
    return EdgeMiddleware(
        None,  # type: ignore[arg-type]
        metrics=metrics or Metrics(),
        max_body_bytes=1024,
        default_locale="zh-CN",
    )


def test_generated_request_ids_are_uuid4_hex() -> None:
    edge = _edge()
    ids = {_call(edge, [])[1]["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    for rid in ids:
        assert uuid.UUID(hex=rid).version == 4
        assert uuid.UUID(hex=rid).hex == rid


def test_headers_are_matched_by_name_in_any_case_and_the_last_wins() -> None:
    state, headers = _call(
        _edge(),
        [
            (b"X-Request-ID", b"first"),
            (b"Accept-Language", b"ja"),
            (b"x-request-id", b"second"),
            (b"accept-language", b"ko"),
        ],
    )
    assert headers["x-request-id"] == state["request_id"] == "second"
    assert state["locale"] == "ko"


def test_unsafe_request_id_is_replaced() -> None:
    state, headers = _call(_edge(), [(b"x-request-id", b"a b<script>")])
    assert headers["x-request-id"] == state["request_id"] != "a b<script>"


def test_remembered_locales_match_negotiation() -> None:
    edge = _edge()
    values = ["", "en", "en-US,en;q=0.9", "ja;q=0", "fr, ko;q=0.5", "zh-TW", "*"]
    values += [f"xx-{i}, ja;q=0.{i % 9 + 1}" for i in range(400)]  # more than are kept
    for _ in range(2):
        for value in values:
            state, _ = _call(edge, [(b"accept-language", value.encode())])
            assert state["locale"] == negotiate_locale(value, "zh-CN"), value
    assert _call(edge, [])[0]["locale"] == "zh-CN"


def test_metrics_count_each_status_by_route_template() -> None:
    metrics = Metrics()
    edge = _edge(metrics=metrics)
    for status in (200, 200, 404, 200):
        _call(edge, [], status=status)
    text = generate_latest(metrics.registry).decode()
    assert (
        'daojia_http_requests_total{method="GET",route="/v1/things/{thing_id}",status="200"} 3.0'
        in text
    )
    assert 'route="/v1/things/{thing_id}",status="404"} 1.0' in text
    assert (
        'daojia_http_request_duration_seconds_count{method="GET",route="/v1/things/{thing_id}"}'
        " 4.0" in text
    )


def test_access_log_follows_the_configured_level(capsys: pytest.CaptureFixture[str]) -> None:
    edge = _edge()

    def access_lines() -> list[dict[str, Any]]:
        out = capsys.readouterr().out.splitlines()
        return [e for e in map(json.loads, out) if e.get("event") == "request"]

    configure_logging(level="WARNING")
    _call(edge, [])
    assert access_lines() == []
    configure_logging(level="INFO")  # a new configuration is picked up by the same app
    _call(edge, [(b"x-request-id", b"trace-1"), (b"accept-language", b"en")])
    (line,) = access_lines()
    assert line["request_id"] == "trace-1"
    assert line["route"] == "/v1/things/{thing_id}"
    assert line["status"] == 200
    assert line["locale"] == "en"
    assert line["level"] == "info"
    configure_logging(level="ERROR")
    _call(edge, [])
    assert access_lines() == []
