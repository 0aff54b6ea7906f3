"""The FastAPI application factory: ``create_app(settings) -> FastAPI``."""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import httpx
import redis.asyncio as redis_asyncio
import structlog
from anyio.abc import TaskGroup
from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.addresses.router import router as addresses_router
from api.auth.router import router as auth_router
from api.auth.router import tenants as tenants_router
from api.auth.service import TokenConfig, make_password_hasher
from api.catalog.router import router as catalog_router
from api.catalog.service import AreaLookup
from api.core import migrate
from api.core.db import make_engine, make_sessionmaker, utcnow
from api.core.deps import add_json_model_schemas
from api.core.errors import install_error_handlers
from api.core.heap import HeapKeeper
from api.core.live import make_live
from api.core.observability import EdgeMiddleware, Metrics, configure_logging
from api.core.settings import Environment, Settings
from api.dispatcher.loop import Dispatcher
from api.dispatcher.push import attach as attach_push
from api.enterprise.profile_router import router as profiles_router
from api.enterprise.router import router as enterprise_router
from api.notifications.relay import run_relay
from api.notifications.router import router as notifications_router
from api.notifications.wechat import SubscribeConfig, WeChatSubscribeSender
from api.orders.roster import RosterCache
from api.orders.router import router as orders_router
from api.orders.service import BookingEnv, expire_unpaid, order_store
from api.payments.dependencies import build_providers
from api.payments.router import order_router as order_payments_router
from api.payments.router import router as payments_router
from api.plans.router import router as plans_router
from api.plans.router import worker_router as worker_day_router
from api.tracking.router import router as tracking_router
from api.tracking.service import TrackWriter
from api.tracking.trips import TripCache, TripListener, asyncpg_dsn
from api.tracking.trips import attach as attach_trips
from api.workers.router import customer_router as service_code_router
from api.workers.router import router as worker_router
from api.workers.router import socket_router as worker_socket_router

log = structlog.get_logger("api.app")


class HealthOut(BaseModel):
    """Liveness / readiness answer."""

    status: str
    database: str | None = None
    redis: str | None = None
    migration: str | None = None
    expected_migration: str | None = None


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/health", summary="Liveness")
    async def health() -> HealthOut:
        """The process is up (does not touch the database)."""
        return HealthOut(status="ok")

    @router.get("/ready", summary="Readiness", responses={503: {"model": HealthOut}})
    async def ready(request: Request) -> JSONResponse:
        """Ready when the database answers and its schema is at the newest migration."""
        expected = migrate.head_revision()
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                current = await conn.run_sync(migrate.current_revision)
        except Exception as exc:  # any driver error means "not ready", never a 500
            log.warning("ready_db_unreachable", error=type(exc).__name__)
            out = HealthOut(status="unavailable", database="unreachable")
            return JSONResponse(out.model_dump(), status_code=503)
        redis_state = None
        if request.app.state.redis is not None:
            try:
                await request.app.state.redis.ping()
                redis_state = "ok"
            except Exception as exc:  # Redis is optional state: report it, never raise
                log.warning("ready_redis_unreachable", error=type(exc).__name__)
                redis_state = "unreachable"
        ok = current == expected and redis_state in (None, "ok")
        if current != expected:
            status = "migrations_pending"
        else:
            status = "ok" if ok else "redis_unavailable"
        out = HealthOut(
            status=status,
            database="ok",
            redis=redis_state,
            migration=current,
            expected_migration=expected,
        )
        return JSONResponse(out.model_dump(), status_code=200 if ok else 503)

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Request counts and latency by route, in Prometheus text format."""
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; engines and clients are created by the lifespan, not here."""
    settings = settings or Settings()
    settings.check_payment_config()
    configure_logging(json_logs=settings.log_json, level=settings.log_level)
    metrics = Metrics()
    app = FastAPI(
        title="daojia API",
        version="0.1.0",
        description=(
            "Home-services platform. Errors are `ErrorResponse {code, message, details}` with "
            "`message` in the Accept-Language locale (zh-CN default, en, ja, ko). Coordinates "
            "are WGS-84 unless `coord_type` says gcj02/bd09."
        ),
        lifespan=_lifespan(settings),
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    _add_middleware(app, settings, metrics)
    _include_routers(app)
    return app


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Startup and shutdown: the app's engines and clients, and its background tasks."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = _open_state(app, settings)
        _tune_gc(settings)
        try:
            async with anyio.create_task_group() as tasks:
                _start_background(app, settings, tasks)
                try:
                    yield
                finally:
                    tasks.cancel_scope.cancel()
        finally:
            await _close_state(app, engine)

    return lifespan


def _open_state(app: FastAPI, settings: Settings) -> AsyncEngine:
    """Engines, clients, caches and adapters on ``app.state``; the engine."""
    engine = make_engine(settings.effective_database_url, echo=settings.sql_echo)
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.token_config = TokenConfig(
        secret=settings.effective_jwt_secret(),
        algorithm=settings.jwt_algorithm,
        access_ttl_s=settings.access_token_ttl_s,
        refresh_ttl_s=settings.refresh_token_ttl_s,
    )
    app.state.password_hasher = make_password_hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib
    )
    app.state.area_lookup = AreaLookup(settings.area_cover_res)
    app.state.http_client = httpx.AsyncClient(timeout=settings.upstream_timeout_s)
    # Redis is optional (live state, broker); PostgreSQL stays the record.
    # A blocking pool: with thousands of live sockets pinging at once, a burst waits
    # for one of the pool's connections instead of failing "Too many connections".
    app.state.redis = (
        redis_asyncio.Redis(
            connection_pool=redis_asyncio.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=100, timeout=5.0, socket_timeout=2.0
            )
        )
        if settings.redis_url
        else None
    )
    app.state.live = make_live(
        settings.redis_url, client=app.state.redis, prefix=settings.redis_prefix
    )
    app.state.dispatcher = Dispatcher(app.state.sessionmaker, app.state.live, settings)
    # Tracker rows of live orders are written behind the position fan-out, batched.
    app.state.track_writer = TrackWriter(app.state.sessionmaker)
    # What each pinging worker travels to, per process; on PostgreSQL only while
    # the LISTEN connection that hears every change is up (api/tracking/trips.py).
    postgres = engine.dialect.name == "postgresql"
    app.state.trips = TripCache(enabled=not postgres)
    attach_trips(engine, app.state.trips)
    app.state.worker_push = attach_push(engine, app.state.live.broker)  # api/dispatcher/push.py
    app.state.trip_listener = (
        TripListener(asyncpg_dsn(engine.url), app.state.trips) if postgres else None
    )
    app.state.payment_providers = build_providers(settings, app.state.http_client)
    # The order store (PostgreSQL or SQLite adapter) is chosen here, once.
    app.state.booking = BookingEnv(
        lookup=app.state.area_lookup, rosters=RosterCache(), store=order_store(engine)
    )
    app.state.subscribe_sender = (
        WeChatSubscribeSender(
            SubscribeConfig(
                base_url=settings.wechat_base_url,
                access_token=settings.wechat_access_token,
                template_id=settings.wechat_subscribe_template_id,
            ),
            app.state.http_client,
        )
        if settings.wechat_subscribe_template_id
        else None
    )
    log.info("startup", database=engine.url.render_as_string(hide_password=True))
    return engine


def _tune_gc(settings: Settings) -> None:
    """Freeze what startup allocated and collect the old generation rarely (not in tests)."""
    if settings.environment is not Environment.TEST:
        # What startup allocated (~200k objects: modules, routes, engines) lives as
        # long as the process. Frozen, the collector's full passes stop walking it
        # again: each such pass paused every request of the process for ~100 ms.
        # (Not under tests, where many short-lived apps would stay frozen.)
        gc.collect()
        gc.freeze()
        # Requests allocate briskly but make little cyclic garbage (a few hundred objects
        # a pass); with the default thresholds the oldest generation was still walked
        # every second or so, each pass a pause that grows with the live connections.
        gc.set_threshold(50_000, 50, 100)


def _start_background(app: FastAPI, settings: Settings, tasks: TaskGroup) -> None:
    """The relay, the dispatcher, the trip listener and the heap keeper, as configured."""
    if settings.relay_interval_s > 0 and settings.environment is not Environment.TEST:

        async def expire(maker: object) -> None:
            await expire_unpaid(app.state.sessionmaker, now=utcnow())

        tasks.start_soon(
            functools.partial(
                run_relay,
                app.state.sessionmaker,
                interval_s=settings.relay_interval_s,
                sender=app.state.subscribe_sender,
                expire=expire,
                presence=app.state.live.broker,
            )
        )
    if settings.dispatch_tick_s > 0 and settings.environment is not Environment.TEST:
        tasks.start_soon(app.state.dispatcher.run)
    if app.state.trip_listener is not None:
        tasks.start_soon(app.state.trip_listener.run)
    testing = settings.environment is Environment.TEST
    if settings.gc_freeze_interval_s > 0 and not testing:
        keeper = HeapKeeper(
            freeze_every_s=settings.gc_freeze_interval_s,
            full_hour=settings.gc_full_collect_hour,
        )
        tasks.start_soon(keeper.run)


async def _close_state(app: FastAPI, engine: AsyncEngine) -> None:
    """Close what ``_open_state`` opened."""
    await app.state.track_writer.aclose()
    await app.state.http_client.aclose()
    await app.state.live.aclose()
    if app.state.redis is not None:
        await app.state.redis.aclose()
    await engine.dispose()


def _add_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """CORS when configured; the edge (request id, locale, size limit, metrics) outermost."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Added last = outermost: request id, locale and size limit apply to everything.
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        default_locale=settings.default_locale,
    )


def _include_routers(app: FastAPI) -> None:
    """Every router, the busiest matched first, the schema in documentation order."""
    routers = _routers()
    # FastAPI matches a request against the included routers in turn, route by route
    # (a few microseconds a route), so the worker's location pings, by far the most
    # frequent request, were matched only after some 60 routes of other routers. No
    # path of one router is a path of another (tests/api/test_app_routes.py): the order
    # decides no request's route, and the busiest routers go first.
    for router in sorted(routers, key=lambda r: r not in _HOT_ROUTERS):
        app.include_router(router)
    _keep_openapi_order(app, routers)


#: Matched before the other routers: worker pings and presence, live tracking.
_HOT_ROUTERS = (worker_router, worker_socket_router, tracking_router)


def _routers() -> list[APIRouter]:
    """Every router of the API, in the order of the documentation."""
    return [
        _ops_router(),
        auth_router,
        tenants_router,
        catalog_router,
        addresses_router,
        orders_router,
        order_payments_router,
        payments_router,
        notifications_router,
        worker_router,
        worker_day_router,
        worker_socket_router,
        service_code_router,
        tracking_router,
        enterprise_router,
        profiles_router,
        plans_router,
    ]


def _keep_openapi_order(app: FastAPI, routers: list[APIRouter]) -> None:
    """List the paths of the schema (and so the sections of /docs) in ``routers`` order,
    not in the order the routers are matched in."""
    order = {
        path: index
        for index, path in enumerate(
            dict.fromkeys(
                str(route.path_format)
                for router in routers
                for route in router.routes
                if hasattr(route, "path_format")
            )
        )
    }
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        add_json_model_schemas(schema)
        paths = schema.get("paths")
        if paths:
            schema["paths"] = dict(
                sorted(paths.items(), key=lambda kv: order.get(kv[0], len(order)))
            )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
