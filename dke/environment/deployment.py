"""The environment's `deployment:` section as the model reads it, and its positioned checks
(cron, rrule, time zone, anchor date, unique slugs). Pure and offline: lint runs it; the
runners' deploy module turns the section into what Prefect's API gets."""

from __future__ import annotations

import datetime
import importlib.util
import sys
import zoneinfo
from pathlib import Path

from dke.diagnostics import Diagnostic
from dke.environment.model import Deployment

DEFAULT_POOL = "dke"
INVALID_SCHEDULE = "DKE310"
DUPLICATE_SLUG = "DKE311"


def deployment_of(env):
    """The environment's `deployment:` as the model's Deployment (defaults when absent).

    `model.from_validated` leaves nested unions as the schema-checked data: build them here.
    """
    raw = getattr(env, "deployment", None)
    if raw is None:
        return Deployment()
    if isinstance(raw, Deployment):
        return raw
    return Deployment.model_validate(raw)


def deployment_name(env) -> str:
    return deployment_of(env).name or env.name


def pool_name(env, override: str | None = None) -> str:
    return override or deployment_of(env).work_pool.name or DEFAULT_POOL


def check_deployment(env, merged) -> list[Diagnostic]:
    """Cron, rrule, time zone and anchor date of each schedule, and unique slugs: positioned.

    The parsers are imported only when there are schedules: lint stays light.
    """
    raw = merged.data.get("deployment") if isinstance(merged.data, dict) else None
    schedules = (raw or {}).get("schedules") or [] if isinstance(raw, dict) else []
    out: list[Diagnostic] = []
    slugs: dict[str, int] = {}
    for i, item in enumerate(schedules):
        if not isinstance(item, dict):
            continue
        here = ("deployment", "schedules", i)
        if "cron" in item:
            problem = cron_problem(item["cron"])
            if problem:
                out.append(merged.diagnostic(here + ("cron",), INVALID_SCHEDULE, problem))
        elif "rrule" in item:
            problem = rrule_problem(item["rrule"])
            if problem:
                out.append(merged.diagnostic(here + ("rrule",), INVALID_SCHEDULE, problem))
        if item.get("anchor_date") is not None:
            problem = anchor_problem(item["anchor_date"])
            if problem:
                out.append(merged.diagnostic(here + ("anchor_date",), INVALID_SCHEDULE, problem))
        if item.get("timezone") is not None:
            problem = timezone_problem(item["timezone"])
            if problem:
                out.append(merged.diagnostic(here + ("timezone",), INVALID_SCHEDULE, problem))
        slug = item.get("slug")
        if isinstance(slug, str):
            if slug in slugs:
                out.append(
                    merged.diagnostic(
                        here + ("slug",),
                        DUPLICATE_SLUG,
                        f"slug {slug!r} is already used by schedule {slugs[slug]}; "
                        "slugs name schedules and must be unique",
                    )
                )
            slugs.setdefault(slug, i)
    return out


def cron_problem(text: str) -> str | None:
    """Prefect's own rule (prefect._internal.schemas.validators.validate_cron_string; croniter
    refuses random and hashed expressions without a hash id already)."""
    croniter = _croniter()
    try:
        ok = croniter.is_valid(text)
    except Exception:  # noqa: BLE001 - croniter raises assorted errors on odd input
        ok = False
    if ok:
        return None
    return (
        f"cron {text!r} is not a valid cron expression: five fields (minute hour day-of-month month "
        "day-of-week), e.g. '0 2 * * *', or a nickname such as '@daily'"
    )


def _croniter():
    """The croniter Prefect vendors, loaded from its file: importing it through the `prefect`
    package would cost lint a second of Prefect's own imports."""

    name = "dke._vendored_croniter"
    if name not in sys.modules:
        spec = importlib.util.find_spec("prefect")  # finds the package without running it
        if spec is None or not spec.submodule_search_locations:
            from croniter import croniter  # a croniter of its own, if any

            return croniter
        path = Path(list(spec.submodule_search_locations)[0]) / "_vendor" / "croniter" / "croniter.py"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    return sys.modules[name].croniter


def rrule_problem(text: str) -> str | None:
    from dateutil import rrule

    try:
        rrule.rrulestr(text, cache=False)
    except Exception as e:  # noqa: BLE001 - ValueError, TypeError, KeyError from the parser
        return f"rrule {text!r} is not a valid RFC 5545 recurrence rule ({e}), e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=6'"
    if len(text) > 6500:  # Prefect's RRuleSchedule limit
        return f"rrule is {len(text)} characters; Prefect stores at most 6500"
    return None


def timezone_problem(text: str) -> str | None:

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"timezone {text!r} is not an IANA time zone name, e.g. 'UTC', 'Europe/Berlin', 'America/New_York'"
    return None


def anchor_problem(text: str) -> str | None:
    try:
        datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return f"anchor_date {text!r} is not an ISO 8601 date-time, e.g. '2026-01-01T00:00:00'"
    return None
