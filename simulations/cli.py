"""``daojia simulate ...``: run a scenario, replay a recorded day, sweep capacity on Ray.

Mounted by daojia/cli.py as the ``simulate`` command, which loads this app when run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TimeElapsedColumn
from rich.table import Table

from simulations.city import ScenarioError, fit_demand, generate, load_scenario, with_fit
from simulations.engine import Policy, policy_with, simulate
from simulations.kpi import kpi_table, summary, write_table

app = typer.Typer(
    help="Simulate city days through the production dispatch code.", add_completion=False
)
console = Console()


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated numbers, got {text!r}") from None


def _weight_overrides(items: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--weight needs NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--weight {key} must be a number, got {value!r}") from None
    return out


@contextmanager
def _progress(description: str) -> Iterator[Callable[[float], None]]:
    """A rich bar fed with the simulated fraction of the day."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}% of the day",
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(description, total=1.0)
        yield lambda frac: bar.update(task, completed=frac)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", soft_wrap=True)  # never split file:line
    return typer.Exit(2)


def _print_summary(values: dict[str, float], title: str) -> None:
    table = Table(title=title)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for k, v in values.items():
        table.add_row(k, f"{v:.4g}")
    console.print(table)


def _policy(
    base: Policy,
    mode: str | None,
    weights: str | None,
    overrides: dict[str, float],
    window: int | None,
) -> Policy:
    changes: dict[str, Any] = {}
    if mode:
        changes["mode"] = mode
    if weights:
        changes["weights"] = weights
    if window:
        changes["batch_window_s"] = window
    policy = policy_with(base, **changes) if changes else base
    if overrides:
        policy = policy_with(policy, weights=overrides)
    return policy


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML/JSON")],
    seed: Annotated[int | None, typer.Option(help="seed (default: the scenario's)")] = None,
    mode: Annotated[str | None, typer.Option(help="auto (派单) or grab (抢单)")] = None,
    weights: Annotated[
        str | None, typer.Option(help="weight preset: default, travel_only, fair")
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option(help="override one weight, NAME=VALUE (repeatable)")
    ] = None,
    demand: Annotated[float, typer.Option(help="demand multiplier")] = 1.0,
    workers: Annotated[float, typer.Option(help="worker-count multiplier")] = 1.0,
    fit: Annotated[
        Path | None, typer.Option(help="CSV of historical orders to fit demand from")
    ] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/run"),
    record: Annotated[
        bool, typer.Option(help="write the JSON-lines event log (for replay)")
    ] = True,
) -> None:
    """Simulate one day of SCENARIO; writes kpis.csv, summary.json, events.jsonl, day.png."""
    try:
        sc = load_scenario(scenario)
        if fit is not None:
            sc = with_fit(sc, fit_demand(fit, sc))
        sc = sc.scaled(demand=demand, workers=workers)
        policy = _policy(
            Policy.from_dict(sc.dispatch), mode, weights, _weight_overrides(weight or []), None
        )
        city = generate(sc, seed, dispatch_ahead_s=int(sc.dispatch.get("dispatch_ahead_s", 3600)))
    except (ScenarioError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    console.print(f"{sc.name}: {city.n_orders} orders, {city.n_workers} workers, {policy.name}")
    with _progress("simulating") as tick:
        result = simulate(
            city, policy, record=out / "events.jsonl" if record else None, progress=tick
        )
    from simulations.plots import plot_day  # matplotlib loads only when there is a plot

    write_table(kpi_table(result, run=sc.name), out / "kpis.csv")
    values = summary(result)
    (out / "summary.json").write_text(json.dumps(values, indent=2), encoding="utf-8")
    plot_day(
        result,
        out / "day.png",
        f"{sc.name} ({sc.day.isoformat()}, {policy.name}): "
        f"{city.n_orders} orders, {city.n_workers} workers",
    )
    _print_summary(values, f"{sc.name} — {policy.name}")
    console.print(
        f"wrote {out}/kpis.csv, summary.json, day.png" + (", events.jsonl" if record else "")
    )


@app.command()
def replay(
    log: Annotated[Path, typer.Argument(help="events.jsonl written by `simulate run`")],
    mode: Annotated[str | None, typer.Option(help="auto or grab")] = None,
    weights: Annotated[str | None, typer.Option(help="weight preset")] = None,
    weight: Annotated[
        list[str] | None, typer.Option(help="override one weight, NAME=VALUE (repeatable)")
    ] = None,
    batch_window: Annotated[int | None, typer.Option(help="batch window, seconds")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/replay"),
) -> None:
    """Re-run a recorded day under another policy or weights; KPIs side by side."""
    from simulations import replay as rp

    try:
        recording = rp.load(log)
        policy = _policy(
            recording.policy, mode, weights, _weight_overrides(weight or []), batch_window
        )
    except (ScenarioError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    with _progress("replaying") as tick:
        before, after = rp.replay(log, policy, record=out / "events.jsonl", progress=tick)
    rows = rp.compare(before, after)
    table = Table(title=f"{recording.policy.name} → {policy.name}")
    for col in ("KPI", "recorded", "replayed", "change"):
        table.add_column(col, justify="right" if col != "KPI" else "left")
    for k, a, b, d in rows:
        table.add_row(k, f"{a:.4g}", f"{b:.4g}", f"{d:+.4g}")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", "recorded", "replayed", "change"])
        writer.writerows(rows)
    console.print(f"wrote {out}/compare.csv and the replayed day's events.jsonl")


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML/JSON")],
    workers: Annotated[str, typer.Option(help="worker multipliers")] = "1.0,1.5,2.0,2.5",
    modes: Annotated[str, typer.Option(help="dispatch modes")] = "auto,grab",
    weights: Annotated[str, typer.Option(help="weight presets")] = "default",
    demand: Annotated[str, typer.Option(help="demand multipliers")] = "1.0",
    target: Annotated[float, typer.Option(help="on-time target for 'workers needed' (0-1)")] = 0.95,
    needed: Annotated[bool, typer.Option(help="bisect the workers each district needs")] = True,
    replications: Annotated[int, typer.Option(help="days averaged per bisection probe")] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: local Ray)")
    ] = None,
    num_cpus: Annotated[int, typer.Option(help="CPUs of the local Ray")] = 2,
    serial: Annotated[bool, typer.Option(help="run points in this process instead of Ray")] = False,
    seed: Annotated[int | None, typer.Option(help="seed (default: the scenario's)")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/sweep"),
) -> None:
    """Grid of workers × modes × weights × demand on Ray; KPI curves, workers needed, HTML."""
    from simulations.plots import html_report, plot_sweep, plot_workers_needed
    from simulations.sweep import grid, run_grid, workers_needed

    try:
        sc = load_scenario(scenario)
        points = grid(
            _floats(workers, "workers"),
            [m.strip() for m in modes.split(",") if m.strip()],
            [w.strip() for w in weights.split(",") if w.strip()],
            _floats(demand, "demand"),
        )
        if not 0 < target <= 1:
            raise ScenarioError(f"must be in (0, 1], got {target}", "target")
    except (ScenarioError, ValueError, OSError) as exc:
        raise _fail(exc) from None
    backend = "serial" if serial else "ray"
    results = run_grid(sc, points, backend=backend, address=address, num_cpus=num_cpus, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    cols = [
        "label",
        "mode",
        "weights",
        "demand",
        "workers",
        "n_workers",
        "n_orders",
        "on_time_rate",
        "booked_on_time_rate",
        "on_demand_on_time_rate",
        "fill_rate",
        "time_to_assign_p90_s",
        "booking_refused",
        "repairs",
        "utilisation",
        "travel_km_per_order",
        "gini_earnings",
        "cancel_rate",
        "wall_s",
    ]
    with (out / "sweep.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    images = [
        plot_sweep(
            results, target, out / "sweep.png", f"{sc.name}: punctuality and waiting vs fleet size"
        )
    ]
    tables: list[tuple[str, Any, Any]] = [("Sweep points", results, cols)]
    if needed:
        answers = workers_needed(
            sc,
            target,
            backend=backend,
            address=address,
            num_cpus=num_cpus,
            seed=seed,
            replications=replications,
        )
        images.append(
            plot_workers_needed(
                answers,
                target,
                out / "workers_needed.png",
                f"{sc.name}: workers needed per district "
                f"({sc.dispatch.get('mode', 'auto')} dispatch)",
            )
        )
        table = Table(title=f"workers needed for {100 * target:g} % on time")
        for col in ("district", "today", "needed"):
            table.add_column(col, justify="right")
        for a in answers:
            table.add_row(
                a["district"],
                str(a["current"]),
                "not reachable" if a["needed"] is None else str(a["needed"]),
            )
        console.print(table)
        tables.append(
            (
                "Workers needed per district (each simulated alone)",
                answers,
                ["district", "current", "needed"],
            )
        )
        (out / "workers_needed.json").write_text(json.dumps(answers, indent=2), encoding="utf-8")
    report = html_report(
        out / "report.html",
        f"{sc.name} capacity sweep",
        f"{len(points)} simulated days on {backend}; target {100 * target:g} % of orders "
        "started on time (promise + grace).",
        images,
        tables,
    )
    console.print(f"wrote {out}/sweep.csv, sweep.png, report.html ({report.stat().st_size} B)")
