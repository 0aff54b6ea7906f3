"""The routers are included busiest first (api/app.py): that order must decide no route.

FastAPI tries the included routers one after the other and takes the first full match
(else the first partial one, for the 405). Moving a router ahead is harmless only while
no path of it is also a path of another router; these tests resolve every route's path,
filled with many values, against the app and against the routers in their documented
order (the order they were included in before), and require the same route each time.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Match

from api.app import _HOT_ROUTERS, _routers, create_app
from api.core.settings import Environment, Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAM = re.compile(r"{[^}]+}")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    tmp: Path = tmp_path_factory.mktemp("routes")
    settings = Settings(
        environment=Environment.TEST,
        database_url=f"sqlite+aiosqlite:///{tmp / 'unused.sqlite3'}",
        var_dir=tmp,
        jwt_secret="x" * 40,
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def documented() -> FastAPI:
    """The same routers, included in their documented order."""
    reference = FastAPI()
    for router in _routers():
        reference.include_router(router)
    return reference


def _inner(entry: BaseRoute) -> list[BaseRoute]:
    router = getattr(entry, "original_router", None)
    return list(router.routes) if router is not None else [entry]


def _all_routes(app: FastAPI) -> list[BaseRoute]:
    return [route for entry in app.router.routes for route in _inner(entry)]


def _describe(route: BaseRoute) -> str:
    methods = sorted(getattr(route, "methods", None) or [])
    return f"{getattr(route, 'name', '?')} {getattr(route, 'path', '?')} {methods}"


def _scope(kind: str, method: str, path: str) -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "root_path": "", "headers": []}


def _first(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[str, BaseRoute] | None:
    partial = None
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match is Match.FULL:
            return "full", route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return ("partial", partial) if partial is not None else None


def _resolve(app: FastAPI, scope: dict[str, Any]) -> str | None:
    """The route FastAPI picks for ``scope``, as FastAPI's own router loop does."""
    top = _first(list(app.router.routes), scope)
    if top is None:
        return None
    kind, entry = top
    inner = _first(_inner(entry), scope)
    assert inner is not None
    return f"{kind}: {_describe(inner[1])}"


def _fillings(fillers: list[str], n: int) -> Iterator[tuple[str, ...]]:
    """Values for ``n`` path parameters: every combination up to two parameters; beyond
    that each parameter over every filler with the others at "1" (a full product of ~150
    fillers over three parameters is millions of paths)."""
    if n <= 2:
        yield from itertools.product(fillers, repeat=n)
        return
    for i in range(n):
        for value in fillers:
            yield tuple(value if j == i else "1" for j in range(n))


def _samples(app: FastAPI) -> list[tuple[str, str, str]]:
    """(scope type, method, path) for every route filled with many values."""
    routes = _all_routes(app)
    literals = {
        segment
        for route in routes
        for segment in str(getattr(route, "path", "")).split("/")
        if segment and not _PARAM.search(segment)
    }
    fillers = sorted(literals | {"1", "42", "x"})
    out = []
    for route in routes:
        path = str(getattr(route, "path", ""))
        params = _PARAM.findall(path)
        kind = "websocket" if not hasattr(route, "methods") else "http"
        for values in _fillings(fillers, len(params)):
            filled = path
            for value in values:
                filled = _PARAM.sub(value, filled, count=1)
            for method in METHODS if kind == "http" else ("GET",):
                out.append((kind, method, filled))
    return sorted(set(out))


def test_every_route_is_reached(app: FastAPI) -> None:
    for route in _all_routes(app):
        path = _PARAM.sub("1", str(getattr(route, "path", "")))
        methods = getattr(route, "methods", None)
        kind = "http" if methods is not None else "websocket"
        for method in methods or ["GET"]:
            assert _resolve(app, _scope(kind, method, path)) == f"full: {_describe(route)}"


def test_routes_resolve_as_in_documented_order(app: FastAPI, documented: FastAPI) -> None:
    samples = _samples(app)
    assert len(samples) > 1000
    for kind, method, path in samples:
        scope = _scope(kind, method, path)
        assert _resolve(app, scope) == _resolve(documented, scope), (kind, method, path)


def test_no_path_of_a_hot_router_is_matched_by_another(app: FastAPI) -> None:
    """The routers moved ahead share no path with any other (a new route or router that
    would is caught here even where the samples above miss it). The others keep their
    relative order: ``/v1/orders/shared/payments`` is a path of both orders and payments.
    """
    hot = [e for e in app.router.routes if getattr(e, "original_router", None) in _HOT_ROUTERS]
    assert len(hot) == len(_HOT_ROUTERS)
    for kind, method, path in _samples(app):
        scope = _scope(kind, method, path)
        matching = [e for e in app.router.routes if e.matches(dict(scope))[0] is not Match.NONE]
        if any(e in hot for e in matching):
            assert len(matching) == 1, (path, [_describe(r) for e in matching for r in _inner(e)])


def test_route_names_reverse_as_in_documented_order(app: FastAPI, documented: FastAPI) -> None:
    for route in _all_routes(app):
        name = str(getattr(route, "name", ""))
        params = {p.strip("{}").split(":")[0]: "1" for p in _PARAM.findall(str(route.path))}  # type: ignore[attr-defined]
        assert app.url_path_for(name, **params) == documented.url_path_for(name, **params)


def test_openapi_lists_paths_in_documented_order(app: FastAPI, documented: FastAPI) -> None:
    assert list(app.openapi()["paths"]) == list(documented.openapi()["paths"])
