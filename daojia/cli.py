"""The `daojia` command: demo, bench, serve, dispatcher, simulate, db, seed, export.

Nothing heavy is imported here: each command imports the simulator, the benchmarks or the
API inside its body, so `daojia --help` costs the import of typer and nothing else. Groups
that live elsewhere (`simulate`) are mounted as thin commands that load their typer app
when run and hand it the rest of the command line. The top-level help is plain click
text (`rich_markup_mode=None`): typer's rich help alone imports ~0.5 s of rich and
markdown modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="daojia home-services platform", no_args_is_help=True, rich_markup_mode=None)
db_app = typer.Typer(
    help="database schema (Alembic migrations)", no_args_is_help=True, rich_markup_mode=None
)
seed_app = typer.Typer(help="load data", no_args_is_help=True, rich_markup_mode=None)
export_app = typer.Typer(help="export recorded data", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(export_app, name="export")

# A forwarding command: every argument and option, --help included, goes to the group it loads.
_FORWARD: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}


def _console() -> Console:
    """A rich console on the current stdout (imported only by commands that print)."""
    from rich.console import Console

    return Console()


def _run_group(ctx: typer.Context, group: typer.Typer) -> None:
    """Run the typer app `group` on the rest of the command line, as a subcommand of ctx."""
    command = typer.main.get_command(group)
    assert ctx.info_name is not None
    with command.make_context(ctx.info_name, list(ctx.args), parent=ctx.parent) as sub_ctx:
        command.invoke(sub_ctx)


@app.command(context_settings=_FORWARD, add_help_option=False)
def simulate(ctx: typer.Context) -> None:
    """Simulate a city day, replay, sweep (`daojia simulate --help`)."""
    from simulations.cli import app as simulate_app

    _run_group(ctx, simulate_app)


@app.command(context_settings=_FORWARD, add_help_option=False)
def bench(ctx: typer.Context, name: str = typer.Argument("list", help="benchmark name")) -> None:
    """Run benchmark NAME (module benchmarks/NAME.py); `daojia bench list` lists them."""
    import importlib
    import pkgutil

    import benchmarks

    console = _console()
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_")
    )
    if name in ("list", "--help", "-h"):
        console.print("benchmarks: " + ", ".join(names))
        console.print("run one with: daojia bench NAME --help")
        return
    if name not in names:
        console.print(f"[red]unknown benchmark {name!r}[/red]; choose one of: {', '.join(names)}")
        raise typer.Exit(2)
    module = importlib.import_module(f"benchmarks.{name}")
    raise typer.Exit(module.main(list(ctx.args)))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes"),
    demo: bool = typer.Option(
        False, "--demo", help="migrate, load the demo city if needed, pay with the sandbox"
    ),
) -> None:
    """Run the HTTP API with uvicorn (settings from DAOJIA_* environment variables)."""
    import os

    import uvicorn

    if demo:
        os.environ.setdefault("DAOJIA_PAYMENT_PROVIDER", "sandbox")
        os.environ.setdefault("DAOJIA_PUBLIC_BASE_URL", f"http://{host}:{port}")
        seed_demo(seed=7, database_url="")
        console = _console()
        console.print(f"daojia demo: [bold]http://{host}:{port}[/bold]  (API docs at /docs)")
        console.print("  sign in as customer 13300000000 / Customer-demo-2026 (sandbox payments)")

    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, workers=workers, log_config=None
    )


@app.command()
def dispatcher(
    owner: str = typer.Option("", help="lease owner name (default: <host>-<pid>)"),
    tick_s: float = typer.Option(
        0.0,
        min=0.0,
        help="seconds between ticks (0: DAOJIA_DISPATCH_TICK_S or 2, shorter when an "
        "enterprise's batch window is)",
    ),
    lease_ttl_ms: int = typer.Option(
        6000, min=1000, help="region lease TTL (a dead process's regions move after this)"
    ),
) -> None:
    """Run a production dispatcher: owns regions through Redis leases (DAOJIA_* settings).

    Start several for fail-over; stop with SIGTERM (leases are released). The API's
    embedded dispatcher should then be off (DAOJIA_DISPATCH_TICK_S=0 for the API).
    """
    import functools

    import anyio

    from api.core.observability import configure_logging
    from api.core.settings import Settings
    from api.dispatcher.runner import run_dispatcher

    settings = Settings()
    configure_logging(json_logs=settings.log_json, level=settings.log_level)
    if not settings.redis_url:
        _console().print(
            "[red]daojia dispatcher needs DAOJIA_REDIS_URL[/red] (leases live in Redis)"
        )
        raise typer.Exit(2)
    anyio.run(
        functools.partial(
            run_dispatcher,
            settings,
            owner=owner or None,
            tick_s=tick_s or None,
            lease_ttl_ms=lease_ttl_ms,
        )
    )


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="target revision"),
    database_url: str = typer.Option("", help="override DAOJIA_DATABASE_URL"),
) -> None:
    """Apply the Alembic migrations (default: to the newest)."""
    from api.core import migrate
    from api.core.settings import Settings

    url = database_url or Settings().effective_database_url
    if url.startswith("sqlite"):
        Settings().var_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(url, revision)
    _console().print(
        f"database at [bold]{migrate.head_revision() if revision == 'head' else revision}[/bold]"
    )


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="target revision (base drops every table)"),
    database_url: str = typer.Option("", help="override DAOJIA_DATABASE_URL"),
) -> None:
    """Revert the Alembic migrations down to REVISION."""
    from api.core import migrate
    from api.core.settings import Settings

    migrate.downgrade(database_url or Settings().effective_database_url, revision)
    _console().print(f"database at [bold]{revision}[/bold]")


@seed_app.command("demo")
def seed_demo(
    seed: int = typer.Option(7, help="random seed of worker homes, skills and shifts"),
    database_url: str = typer.Option("", help="override DAOJIA_DATABASE_URL"),
) -> None:
    """Migrate, then load the demo city (idempotent; refuses to run in production)."""
    import asyncio

    from api.auth.service import make_password_hasher
    from api.core import migrate
    from api.core.db import make_engine, make_sessionmaker
    from api.core.settings import Environment, Settings
    from api.seed import SeedReport
    from api.seed import seed_demo as run_seed

    console = _console()
    settings = Settings()
    if settings.environment is Environment.PRODUCTION:
        console.print("[red]refusing to load demo accounts into a production database[/red]")
        raise typer.Exit(2)
    url = database_url or settings.effective_database_url
    if url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(url)

    async def go() -> SeedReport:
        engine = make_engine(url)
        try:
            hasher = make_password_hasher(settings.argon2_time_cost, settings.argon2_memory_kib)
            return await run_seed(make_sessionmaker(engine), hasher, seed=seed)
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    created = ", ".join(f"{n} {kind}" for kind, n in sorted(report.created.items()))
    console.print(f"demo city loaded: {created or 'nothing new (already seeded)'}")
    for role, phone, password in report.logins:
        console.print(f"  {role:<18} {phone:<12} {password}")


@export_app.command("day")
def export_day(
    day: str = typer.Option(..., "--date", help="local day YYYY-MM-DD (DAOJIA_SERVICE_TIMEZONE)"),
    out: str = typer.Option("", help="log file (default out/export/day-DATE.jsonl)"),
    enterprise: int = typer.Option(0, help="only this enterprise's orders and workers (0: all)"),
    seed: int = typer.Option(0, help="seed of the replayed workers' answers"),
    database_url: str = typer.Option("", help="override DAOJIA_DATABASE_URL"),
) -> None:
    """Write a recorded day (orders, offers, decisions, answers) as a replay log.

    `daojia simulate replay FILE` then re-runs that day under another policy.
    """
    import asyncio
    import dataclasses
    from datetime import date

    from api.core.db import make_engine, make_sessionmaker
    from api.core.settings import Settings
    from api.dispatcher.export import RecordedDay, recorded_day
    from simulations.export import write_log

    console = _console()
    try:
        when = date.fromisoformat(day)
    except ValueError:
        console.print(f"[red]--date: not a YYYY-MM-DD date: {day!r}[/red]")
        raise typer.Exit(2) from None
    settings = Settings()
    url = database_url or settings.effective_database_url

    async def read() -> RecordedDay:
        engine = make_engine(url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await recorded_day(session, settings, when, enterprise_id=enterprise or None)
        finally:
            await engine.dispose()

    recorded = asyncio.run(read())
    path = out or f"out/export/day-{when.isoformat()}.jsonl"
    city = write_log(dataclasses.asdict(recorded), path, seed=seed)
    offers = sum(1 for o in recorded.offers if o.mode == "auto")
    console.print(
        f"wrote {path}: {city.n_orders} orders, {offers} offers, {city.n_workers} workers"
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    walkthrough_only: bool = typer.Option(
        False, "--walkthrough-only", help="print the geo walkthrough and exit"
    ),
) -> None:
    """The demo on the embedded default: a geo walkthrough, then the API with demo data."""
    from api.demo import run_demo

    run_demo(_console())
    if not walkthrough_only:
        serve(host=host, port=port, workers=1, demo=True)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
