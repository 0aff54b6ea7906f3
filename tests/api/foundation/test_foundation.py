"""App foundation: health, readiness, error envelope, request ids, metrics, body limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.core import migrate
from api.core.settings import Environment, Settings


def test_health_is_liveness_only(client: TestClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_ready_when_migrated(client: TestClient) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["migration"] == migrate.head_revision()
    assert ready.json()["database"] == "ok"


def test_not_ready_before_migrations(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.TEST,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}",
        var_dir=tmp_path,
        jwt_secret="x" * 40,
    )
    with TestClient(create_app(settings)) as client:
        resp = client.get("/ready")
    assert resp.status_code == 503
    assert resp.json()["status"] == "migrations_pending"
    assert resp.json()["migration"] is None


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "req-123.abc"})
    assert given.headers["X-Request-ID"] == "req-123.abc"
    fresh = client.get("/health")
    other = client.get("/health")
    assert len(fresh.headers["X-Request-ID"]) >= 16
    assert fresh.headers["X-Request-ID"] != other.headers["X-Request-ID"]
    # Header injection attempts are replaced, not reflected.
    bad = client.get("/health", headers={"X-Request-ID": "a b<script>"})
    assert bad.headers["X-Request-ID"] != "a b<script>"


def test_unknown_route_uses_error_envelope_in_each_locale(client: TestClient) -> None:
    zh = client.get("/v1/nope")
    assert zh.status_code == 404
    assert zh.json() == {"code": "not_found", "message": "未找到。", "details": None}
    en = client.get("/v1/nope", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert en.json()["message"] == "Not found."
    ja = client.get("/v1/nope", headers={"Accept-Language": "ja"})
    assert ja.json()["message"] == "見つかりません。"
    ko = client.get("/v1/nope", headers={"Accept-Language": "ko-KR"})
    assert ko.json()["message"] == "찾을 수 없습니다."
    assert ko.headers["Content-Language"] == "ko"


def test_wrong_method_is_405_in_envelope(client: TestClient) -> None:
    resp = client.delete("/health", headers={"Accept-Language": "en"})
    assert resp.status_code == 405
    assert resp.json()["code"] == "method_not_allowed"


def test_oversized_body_is_413_declared_and_chunked(client: TestClient) -> None:
    big = b'{"phone": "' + b"1" * (70 * 1024) + b'"}'
    declared = client.post(
        "/v1/auth/login",
        content=big,
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"
    assert "65536" in declared.json()["message"]

    def chunks():  # no Content-Length: the server must count
        for _ in range(70):
            yield b"x" * 1024

    chunked = client.post(
        "/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert chunked.json()["message"] == "请求体过大（上限 65536 字节）。"


def test_small_chunked_body_still_works(client: TestClient) -> None:
    def chunks():
        yield b'{"phone": "13800138000",'
        yield b' "password": "nope"}'

    resp = client.post(
        "/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    # Reached the handler: a normal credentials failure, not a body error.
    assert resp.status_code == 401
    assert resp.json()["code"] == "invalid_credentials"


def test_wrong_content_type_is_415(client: TestClient) -> None:
    resp = client.post(
        "/v1/auth/login",
        content=b"phone=13800138000&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "en"},
    )
    assert resp.status_code == 415
    assert resp.json() == {
        "code": "unsupported_media_type",
        "message": "Send the request body as application/json.",
        "details": None,
    }
    zh = client.post("/v1/auth/login", content=b"{}", headers={"Content-Type": "text/plain"})
    assert zh.status_code == 415
    assert zh.json()["message"] == "请以 application/json 格式发送请求体。"


def test_malformed_json_is_400(client: TestClient) -> None:
    resp = client.post(
        "/v1/auth/login",
        content=b'{"phone": ',
        headers={"Content-Type": "application/json", "Accept-Language": "en"},
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == "malformed_json"
    assert resp.json()["message"] == "The body is not valid JSON."


def test_validation_errors_are_translated_per_field(client: TestClient) -> None:
    resp = client.post("/v1/auth/login", json={"password": 5, "extra": 1})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "validation_error"
    assert body["message"] == "部分字段填写有误。"
    by_field = {tuple(d["loc"]): d for d in body["details"]}
    assert by_field[("body", "phone")]["message"] == "此项为必填项。"
    assert by_field[("body", "password")]["message"] == "必须是字符串。"
    assert by_field[("body", "extra")]["message"] == "未知字段。"
    en = client.post("/v1/auth/login", json={"password": 5}, headers={"Accept-Language": "en"})
    assert {d["message"] for d in en.json()["details"]} >= {
        "This field is required.",
        "Must be a string.",
    }


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get("/v1/catalog/services/12345")
    client.get("/v1/catalog/services/67890")
    text = client.get("/metrics").text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("daojia_http_requests_total")
        and 'route="/v1/catalog/services/{service_id:int}"' in ln
        and 'status="404"' in ln
    )
    assert line.endswith(" 2.0")
    assert "daojia_http_request_duration_seconds_bucket" in text
    assert "/v1/catalog/services/12345" not in text  # templates, not raw paths


def test_openapi_has_docs_and_examples(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    register = spec["paths"]["/v1/auth/register"]["post"]
    assert "422" in register["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["RegisterIn"]["properties"]["phone"]["examples"] == ["13800138000"]
    assert "ErrorResponse" in schemas


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_ready_checks_redis_when_configured(settings: Settings) -> None:
    from tests.services import require

    require(_redis_up(), "Redis not reachable at 127.0.0.1:6379")
    with TestClient(
        create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/15"}))
    ) as client:
        assert client.get("/ready").json()["redis"] == "ok"
    # A configured but dead Redis makes the instance not ready (and is no 500).
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead)) as client:
        resp = client.get("/ready")
    assert resp.status_code == 503
    assert resp.json()["redis"] == "unreachable"


def test_access_log_is_json_with_request_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    with TestClient(create_app(settings)) as client:
        capsys.readouterr()
        client.get("/v1/catalog/services/7", headers={"X-Request-ID": "trace-42"})
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    access = next(e for e in lines if e.get("event") == "request")
    assert access["request_id"] == "trace-42"
    assert access["route"] == "/v1/catalog/services/{service_id:int}"
    assert access["status"] == 404
    assert access["level"] == "info"
    assert access["timestamp"].endswith("Z")
