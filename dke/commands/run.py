"""`dke run`: the environment's flow on this machine, on a local Dask cluster."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.diagnostics import DkeError
from dke.runners.local import plan
from dke.runners.localrun import run_locally, summary
from dke.runners.progress import Progress, format_timings
from dke.runners.signals import interrupts_end_quietly


@click.command(
    epilog="Exit codes: 0 the flow run Completed; 1 it Failed or Crashed; 2 usage error; "
    "4 invalid environment; 130 interrupted (Ctrl-C, SIGTERM)."
)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override one flow parameter; the value is parsed as YAML (repeatable).",
)
def run(file, overlays, sets, kube_version, params) -> None:
    """Run FILE's flow here: a local Dask cluster adapted between min_workers and max_workers.

    The flow and every worker share one Prefect API: PREFECT_API_URL when set, else a
    temporary local server that lives as long as the command. Nothing started here
    outlives the command.
    """
    overrides = parse_params(params)
    with interrupts_end_quietly(), Progress() as progress:
        progress.phase("validating")
        loaded = load_valid(file, overlays, sets, kube_version)
        local = plan(loaded.env, loaded.worker)
        parameters = {**loaded.env.flow.parameters, **overrides}
        result = run_locally(loaded, local, parameters, progress)
    if os.environ.get("DKE_TIMINGS"):
        click.echo(format_timings(progress.marks, time.time()), err=True)
    click.echo(summary(result))
    raise SystemExit(result.exit_code)


def parse_params(params) -> dict[str, Any]:
    """`--param name=value` pairs; values are YAML 1.2 as in --set (`n=3` is an int,
    `d=2024-01-01` stays text: Prefect validates it against the flow's annotations)."""
    from dke.environment.load import parse_yaml

    out: dict[str, Any] = {}
    for arg in params:
        name, sep, raw = arg.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise DkeError(f"--param {arg!r}: expected NAME=VALUE, e.g. --param n=10", exitcodes.USAGE)
        try:
            out[name] = parse_yaml(f"--param {name}", raw, allow_empty=True)[0].data if raw.strip() else ""
        except DkeError as e:
            problem = e.diagnostics[0].message.removeprefix("invalid YAML: ")
            raise DkeError(f"--param {arg!r}: value is not valid YAML: {problem}", exitcodes.USAGE) from None
    return out
