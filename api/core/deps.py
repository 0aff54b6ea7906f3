"""Typed dependency aliases shared by every router (``SessionDep``, ``SettingsDep`` ...).

Who is calling (``CurrentUser``, role checks) lives in ``api.auth.dependencies``.
"""

from __future__ import annotations

import email.message
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, Path, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from api.core.db import get_session, utcnow
from api.core.errors import UnsupportedMediaType, locale_of
from api.core.live import LiveBackends
from api.core.settings import Settings

SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_locale(request: Request) -> str:
    """The locale negotiated from Accept-Language (zh-CN, en, ja, ko)."""
    return locale_of(request)


LocaleDep = Annotated[str, Depends(get_locale)]


async def get_http_client(request: Request) -> httpx.AsyncClient:
    """The shared outbound HTTP client (WeChat, QQ); tests override it with a fake server."""
    client: httpx.AsyncClient = request.app.state.http_client
    return client


HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]


async def require_json_body(request: Request) -> None:
    """415 unless a request that carries a body declares it as JSON."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    length = request.headers.get("content-length")
    if length == "0" or (length is None and "transfer-encoding" not in request.headers):
        return
    content_type = request.headers.get("content-type")
    if content_type:
        msg = email.message.Message()
        msg["content-type"] = content_type
        subtype = msg.get_content_subtype()
        if msg.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return
    raise UnsupportedMediaType(expected="application/json")


JsonBody = Depends(require_json_body)

M = TypeVar("M", bound=BaseModel)

#: Models read by ``json_model``: their schemas join the OpenAPI components (api.app).
JSON_MODELS: dict[str, type[BaseModel]] = {}


def json_model(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads the request body as ``model`` in one pass.

    For the hottest bodies. FastAPI parses a body with ``json.loads`` and then validates
    the Python objects; pydantic-core's ``model_validate_json`` parses and validates in
    one pass in Rust, which for a 100-fix ping batch is most of the request's CPU.
    Errors stay FastAPI's: a ``RequestValidationError`` located under ``body``
    (malformed JSON is ``json_invalid``, a 400; an empty body is a missing one, a 422).
    Document the body with ``openapi_extra=json_model_openapi(model)``.
    """

    async def read(request: Request) -> M:
        raw = await request.body()
        if not raw:
            raise RequestValidationError(
                [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
            )
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None

    return read


def json_model_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body ``json_model(model)`` reads."""
    JSON_MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def add_json_model_schemas(schema: dict[str, Any]) -> None:
    """Put the schemas of ``JSON_MODELS`` (and what they refer to) into ``schema``'s components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in JSON_MODELS.items():
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, definition in own.pop("$defs", {}).items():
            components.setdefault(sub, definition)
        components.setdefault(name, own)


#: A database id in a path: bounded so absurd numbers are a 422, not a driver overflow.
IdPath = Annotated[int, Path(ge=1, le=2**53 - 1, description="id")]


def websocket_token(websocket: WebSocket, token: str | None) -> tuple[str | None, str | None]:
    """(access token, subprotocol to answer) of a WebSocket handshake.

    Browsers cannot set an Authorization header on a WebSocket: the token comes as
    ``?token=`` or as the subprotocol pair ``Sec-WebSocket-Protocol: bearer, <token>``
    (then the server must answer with the ``bearer`` subprotocol).
    """
    if token:
        return token, None
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    if len(offered) >= 2 and offered[0].lower() == "bearer" and offered[1]:
        return offered[1], offered[0]
    return None, None


async def get_live(request: Request) -> LiveBackends:
    """The app's live layer (broker, LiveState, leases), made in the lifespan."""
    live: LiveBackends = request.app.state.live
    return live


LiveDep = Annotated[LiveBackends, Depends(get_live)]


def app_clock(app: Any) -> Callable[[], datetime]:
    """The app's clock (UTC); tests set ``app.state.dispatch_clock`` to drive time."""
    clock: Callable[[], datetime] = getattr(app.state, "dispatch_clock", utcnow)
    return clock


async def get_now(connection: HTTPConnection) -> datetime:
    """Now (UTC) by ``app_clock``."""
    clock = app_clock(connection.app)
    return clock()


NowDep = Annotated[datetime, Depends(get_now)]
