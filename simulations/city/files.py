"""Scenario files: YAML/JSON in (errors name the field and its line), plain data and files out."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from simulations.city import scenario as sc
from simulations.city.scenario import Scenario, ScenarioError, finite


def _parse_hhmm(text: Any, name: str) -> float:
    if isinstance(text, int | float) and not isinstance(text, bool):
        return finite(text, name, 0, 48)
    if not isinstance(text, str) or ":" not in text:
        raise ScenarioError(f"must be HH:MM, got {text!r}", name)
    hh, mm = text.strip().split(":", 1)
    try:
        hours = int(hh) + int(mm) / 60.0
    except ValueError:
        raise ScenarioError(f"must be HH:MM, got {text!r}", name) from None
    return finite(hours, name, 0, 48)


def _line_map(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every key path of a composed YAML tree to its 1-based line number."""
    out = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out[sub] = key.start_mark.line + 1
            for k, v in _line_map(value, sub).items():
                out.setdefault(k, v)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_line_map(item, (*path, i)))
    return out


def _path_of(field_name: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for chunk in field_name.replace("]", "").split("."):
        name, *idx = chunk.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in idx)
    return tuple(parts)


def _build(cls: type[Any], raw: Any, where: str, **extra: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"must be a mapping, got {type(raw).__name__}", where)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known - set(extra))
    if unknown:
        raise ScenarioError(
            f"unknown field(s) {unknown}; known: {sorted(known)}", f"{where}.{unknown[0]}"
        )
    try:
        return cls(**{**{k: v for k, v in raw.items() if k not in extra}, **extra})
    except ScenarioError as exc:
        raise ScenarioError(str(exc.args[0]).split(": ", 1)[-1], f"{where}.{exc.field}") from None
    except TypeError as exc:
        raise ScenarioError(str(exc), where) from None


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    """Build and validate a Scenario from plain data (as in the YAML/JSON file)."""
    if not isinstance(data, Mapping):
        raise ScenarioError("the scenario must be a mapping at top level")
    allowed = {f.name for f in fields(Scenario)} | {"date"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(f"unknown field(s) {unknown}", str(unknown[0]))
    for key in ("districts", "services", "workers", "demand"):
        if key not in data:
            raise ScenarioError("is required", key)
    districts = tuple(
        _build(sc.District, d, f"districts[{i}]") for i, d in enumerate(data["districts"] or [])
    )
    services = tuple(
        _build(sc.ServiceType, s, f"services[{i}]") for i, s in enumerate(data["services"] or [])
    )
    groups: list[sc.WorkerGroup] = []
    for i, g in enumerate(data["workers"] or []):
        where = f"workers[{i}]"
        if not isinstance(g, Mapping):
            raise ScenarioError("must be a mapping", where)
        shift = g.get("shift", "08:00-18:00")
        if not isinstance(shift, str) or "-" not in shift:
            raise ScenarioError(f"must be 'HH:MM-HH:MM', got {shift!r}", f"{where}.shift")
        start_txt, end_txt = shift.split("-", 1)
        skills = g.get("skills", ())
        if isinstance(skills, str) or not isinstance(skills, Sequence):
            raise ScenarioError("must be a list of skill names", f"{where}.skills")
        rest = {k: v for k, v in g.items() if k not in ("shift", "skills")}
        groups.append(
            _build(
                sc.WorkerGroup,
                rest,
                where,
                shift_start_h=_parse_hhmm(start_txt, f"{where}.shift"),
                shift_end_h=_parse_hhmm(end_txt, f"{where}.shift"),
                skills=tuple(skills),
            )
        )
    raw_demand = data["demand"]
    if not isinstance(raw_demand, Mapping):
        raise ScenarioError("must be a mapping", "demand")
    demand = _build(
        sc.Demand,
        {k: v for k, v in raw_demand.items() if k != "hourly_profile"},
        "demand",
        hourly_profile=tuple(raw_demand.get("hourly_profile", ())),
    )
    customers = _build(sc.Customers, data.get("customers") or {}, "customers")
    disruptions = _build(sc.Disruptions, data.get("disruptions") or {}, "disruptions")
    raw_day = data.get("date", data.get("day", "2026-11-28"))
    try:
        day = raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day))
    except ValueError:
        raise ScenarioError(f"must be an ISO date, got {raw_day!r}", "date") from None
    dispatch = data.get("dispatch") or {}
    if not isinstance(dispatch, Mapping):
        raise ScenarioError("must be a mapping", "dispatch")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ScenarioError(f"must be an integer >= 0, got {seed!r}", "seed")
    known_skills = {s.skill for s in services}
    for i, g in enumerate(groups):
        for j, sk in enumerate(g.skills):
            if not isinstance(sk, str) or not sk:
                raise ScenarioError("must be a skill name", f"workers[{i}].skills[{j}]")
    del known_skills  # workers may have skills no service needs
    return Scenario(
        name=str(data.get("name", "scenario")),
        day=day,
        districts=districts,
        services=services,
        workers=tuple(groups),
        demand=demand,
        customers=customers,
        dispatch=dict(dispatch),
        disruptions=disruptions,
        seed=seed,
        utc_offset_h=data.get("utc_offset_h", 8.0),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Load a YAML or JSON scenario; errors are ScenarioError naming the field and line."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioError(
            f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}",
            line=(mark.line + 1) if mark is not None else None,
            source=str(p),
        ) from None
    lines = _line_map(node) if node is not None else {}
    try:
        scenario = scenario_from_dict(data if data is not None else {})
        # The dispatch section is the engine's Policy: validate it here too, so its
        # errors carry line numbers like the rest (imported late: engine imports city).
        from simulations.engine import Policy

        Policy.from_dict(scenario.dispatch)
        return scenario
    except ScenarioError as exc:
        path_t = _path_of(exc.field)
        line = None
        while path_t and line is None:
            line = lines.get(path_t)
            path_t = path_t[:-1]
        message = str(exc.args[0])
        if exc.field and message.startswith(f"{exc.field}: "):
            message = message[len(exc.field) + 2 :]
        raise ScenarioError(message, exc.field, line, str(p)) from None


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Plain-data form of a scenario (round-trips through ``scenario_from_dict``)."""

    def hhmm(h: float) -> str:
        return f"{int(h):02d}:{round((h % 1) * 60):02d}"

    return {
        "name": s.name,
        "date": s.day.isoformat(),
        "seed": s.seed,
        "utc_offset_h": s.utc_offset_h,
        "districts": [
            {f.name: getattr(d, f.name) for f in fields(sc.District)} for d in s.districts
        ],
        "services": [
            {f.name: getattr(v, f.name) for f in fields(sc.ServiceType)} for v in s.services
        ],
        "workers": [
            {
                "district": g.district,
                "count": g.count,
                "shift": f"{hhmm(g.shift_start_h)}-{hhmm(g.shift_end_h)}",
                "skills": list(g.skills),
                "mode": g.mode,
                "decline_prob": g.decline_prob,
                "response_s": g.response_s,
                "rating": g.rating,
            }
            for g in s.workers
        ],
        "demand": {
            "orders_per_day": s.demand.orders_per_day,
            "hourly_profile": list(s.demand.hourly_profile),
            "weekday_multiplier": dict(s.demand.weekday_multiplier),
        },
        "customers": {f.name: getattr(s.customers, f.name) for f in fields(sc.Customers)},
        "dispatch": dict(s.dispatch),
        "disruptions": {f.name: getattr(s.disruptions, f.name) for f in fields(sc.Disruptions)},
    }


def dump_scenario(s: Scenario, path: str | Path) -> None:
    """Write a scenario as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
    p = Path(path)
    data = scenario_to_dict(s)
    if p.suffix in (".yaml", ".yml"):
        p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    else:
        p.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
