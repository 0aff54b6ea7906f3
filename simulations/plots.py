"""Plots (matplotlib figures written to PNG files) and a self-contained HTML report.

- :func:`plot_sweep` — KPI curves over fleet size: % of orders started on time (all
  orders solid, booked ones dotted) and the p90 wait of an on-demand order for a worker,
  one line per policy / weights / demand series, the target dashed.
- :func:`plot_workers_needed` — per district, workers today vs workers needed.
- :func:`plot_day` — one simulated day by hour: orders on time, late and lost, and how
  many workers were busy.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from simulations.engine import OrderOutcome, SimResult
from simulations.sweep import by_series


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made as needed).

    A bare ``Figure`` renders with Agg on its own: no pyplot, no process-wide backend,
    nothing kept open after the file is written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def plot_sweep(
    results: Sequence[Mapping[str, Any]], target: float, path: str | Path, title: str
) -> Path:
    """On-time % (all orders; booked dotted) and on-demand p90 time-to-assign (minutes)
    against workers on shift; PNG at ``path``."""
    series = by_series(results)
    fig = Figure(figsize=(11, 4.4), constrained_layout=True)
    ax1, ax2 = fig.subplots(1, 2)
    markers = "osD^v<>p*h"
    for i, (label, rows) in enumerate(series.items()):
        x = [r["n_workers"] for r in rows]
        line = ax1.plot(
            x, [100 * r["on_time_rate"] for r in rows], marker=markers[i % 10], label=label
        )
        if all("booked_on_time_rate" in r for r in rows):
            ax1.plot(
                x,
                [100 * r["booked_on_time_rate"] for r in rows],
                linestyle=":",
                color=line[0].get_color(),
            )
        ax2.plot(
            x, [r["time_to_assign_p90_s"] / 60 for r in rows], marker=markers[i % 10], label=label
        )
    ax1.axhline(100 * target, color="black", linestyle="--", linewidth=1)
    ax1.text(
        ax1.get_xlim()[0], 100 * target, f" target {100 * target:g} %", va="bottom", fontsize=9
    )
    ax1.set_xlabel("workers on shift (count)")
    ax1.set_ylabel("orders started on time (% of orders wanted; dotted: booked)")
    ax1.set_title("Punctuality")
    ax1.set_ylim(0, 102)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("workers on shift (count)")
    ax2.set_ylabel("on-demand order: time to assign a worker, p90 (min)")
    ax2.set_title("Waiting for a worker (on demand)")
    ax2.grid(alpha=0.3)
    ax2.legend(title="policy / weights / demand", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_workers_needed(
    answers: Sequence[Mapping[str, Any]], target: float, path: str | Path, title: str
) -> Path:
    """Per district: workers today and workers needed for ``target`` on-time; PNG."""
    names = [a["district"] for a in answers]
    current = [a["current"] for a in answers]
    needed = [a["needed"] if a["needed"] is not None else np.nan for a in answers]
    y = np.arange(len(names))
    fig = Figure(figsize=(7.5, 0.6 * len(names) + 1.6), constrained_layout=True)
    ax = fig.subplots()
    ax.barh(y - 0.2, current, height=0.4, label="workers today", color="#9aa7b8")
    ax.barh(y + 0.2, needed, height=0.4, label=f"needed for {100 * target:g} % on time")
    for yi, n in zip(y, needed, strict=True):
        text = "not reachable by adding workers" if np.isnan(n) else f"{int(n)}"
        ax.text((0 if np.isnan(n) else n) + 1, yi + 0.2, text, va="center", fontsize=9)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("workers on shift in the district (count)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_day(result: SimResult, path: str | Path, title: str) -> Path:
    """Orders by local hour they were due (on time / late / lost) and workers busy; PNG."""
    c = result.city
    promised = c.promised_s if result.promised_s is None else result.promised_s
    hour = ((promised - c.day_start_s) // 3600).clip(0, 23)
    served = result.outcome == OrderOutcome.SERVED
    on_time = served & (result.start_s - promised <= c.grace_s)
    late = served & ~on_time
    lost = ~served
    bins = np.arange(25)
    counts = [np.histogram(hour[m], bins)[0] for m in (on_time, late, lost)]
    busy = np.zeros(24)
    for h in range(24):
        t0 = c.day_start_s + h * 3600
        s = np.where(result.start_s >= 0, result.assigned_at, np.iinfo(np.int64).max)
        e = np.where(result.end_s >= 0, result.end_s, np.iinfo(np.int64).max)
        busy[h] = float(((s <= t0 + 1800) & (e > t0 + 1800)).sum())
    fig = Figure(figsize=(10, 4.4), constrained_layout=True)
    ax = fig.subplots()
    x = np.arange(24)
    ax.bar(x, counts[0], label="started on time", color="#3b8f5a")
    ax.bar(x, counts[1], bottom=counts[0], label="started late", color="#e3a33b")
    ax.bar(x, counts[2], bottom=counts[0] + counts[1], label="not served", color="#c4473a")
    ax.set_xlabel("hour the start was promised (local time, h)")
    ax.set_ylabel("orders (count)")
    ax.set_xticks(x)
    ax2 = ax.twinx()
    ax2.plot(x, busy, color="black", marker=".", label="workers busy at half past")
    ax2.set_ylabel("workers busy (count)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(
    path: str | Path,
    title: str,
    intro: str,
    images: Sequence[Path],
    tables: Sequence[tuple[str, Sequence[Mapping[str, Any]], Sequence[str]]],
) -> Path:
    """One self-contained HTML page: intro, PNGs (embedded) and tables (caption, rows, cols)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
    ]
    for img in images:
        data = base64.b64encode(Path(img).read_bytes()).decode("ascii")
        parts.append(f"<img alt='{html.escape(img.name)}' src='data:image/png;base64,{data}'>")
    for caption, rows, cols in tables:
        parts.append(f"<h2>{html.escape(caption)}</h2>{_table(rows, cols)}")
    parts.append("</body></html>")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(parts), encoding="utf-8")
    return out
