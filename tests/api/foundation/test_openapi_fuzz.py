"""Schemathesis over the public OpenAPI: generated requests never get a 5xx and every answer
matches the documented schema. Runs on SQLite only (the dialect does not change validation)
with a bounded number of examples per operation."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.core import migrate
from api.core.deps import get_http_client
from api.core.settings import Environment, Settings
from tests.api.auth.fake_wechat import FakeCode2Session

# The schema is read at import (no lifespan, no database touched); requests go through the
# module-scoped client below, whose lifespan opens this directory's SQLite database.
_DIR = Path(tempfile.mkdtemp(prefix="daojia-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)  # also when collected but not run
_URL = f"sqlite+aiosqlite:///{_DIR / 'fuzz.sqlite3'}"
APP = create_app(
    Settings(
        environment=Environment.TEST,
        database_url=_URL,
        var_dir=_DIR,
        jwt_secret="fuzz-" + "z" * 40,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        wechat_base_url="https://wechat.test",
        qq_base_url="https://qq.test",
    )
)
# Public operations only (what an anonymous client can reach); the signed-in ones have
# their own authorization tests.
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", APP)
    .exclude(path_regex=r"^/v1/(addresses|enterprises)")
    .exclude(path_regex=r"^/v1/catalog/", method=["POST", "PATCH"])
    .exclude(path_regex=r"^/v1/auth/(me|wechat/bind)$")
)


@pytest.fixture(scope="module")
def fuzz_client() -> Iterator[TestClient]:
    """The app on its own migrated SQLite database, WeChat/QQ answered by the fake server."""
    migrate.upgrade(_URL)
    wechat = FakeCode2Session("wx-dev-appid", "wx-dev-secret", "wechat.test")
    qq = FakeCode2Session("qq-dev-appid", "qq-dev-secret", "qq.test")

    def route(request: httpx.Request) -> httpx.Response:
        return qq(request) if request.url.host == "qq.test" else wechat(request)

    upstream = httpx.AsyncClient(transport=httpx.MockTransport(route))
    APP.dependency_overrides[get_http_client] = lambda: upstream
    with TestClient(APP, raise_server_exceptions=False) as client:
        yield client


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_schema(
    case: schemathesis.Case, fuzz_client: TestClient
) -> None:
    # Semantic rules the schema cannot express (a mainland mobile number, password strength,
    # lat and lng given together, a code WeChat accepts) rightly reject some schema-valid
    # inputs with a 4xx, so "positive data acceptance" is not a property of this API.
    case.call_and_validate(session=fuzz_client, excluded_checks=[positive_data_acceptance])
