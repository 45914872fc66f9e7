"""`dke run`: the environment's flow on this machine, on a local Dask cluster."""

from __future__ import annotations

import os
import time

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid, params_option
from dke.runners.local import plan
from dke.runners.localrun import run_locally, summary
from dke.runners.progress import Progress, format_timings
from dke.runners.signals import interrupts_end_quietly


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "the flow run Completed",
            exitcodes.FAILED: "it Failed or Crashed",
            exitcodes.USAGE: None,
            exitcodes.CLUSTER: "cannot reach the Prefect API (PREFECT_API_URL) or the Dask scheduler "
            "(scheduler_address)",
            exitcodes.INVALID: None,
        }
    )
)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@params_option
def run(file, overlays, sets, kube_version, params) -> None:
    """Run FILE's flow here: a local Dask cluster adapted between min_workers and max_workers.

    The flow and every worker share one Prefect API: PREFECT_API_URL when set, else a
    temporary local server that lives as long as the command. Nothing started here
    outlives the command.
    """
    with interrupts_end_quietly(), Progress() as progress:
        progress.phase("validating")
        # --param checked against the flow's source, merged into flow.parameters: before anything starts
        loaded = load_valid(file, overlays, sets, kube_version, params=params, local_run=True)
        local = plan(loaded.env, loaded.worker)
        parameters = loaded.env.flow.parameters
        result = run_locally(loaded, local, parameters, progress)
    if os.environ.get("DKE_TIMINGS"):
        click.echo(format_timings(progress.marks, time.time()), err=True)
    click.echo(summary(result))
    raise SystemExit(result.exit_code)
