import os

import click

from dke import exitcodes
from dke.commands.common import environment_options
from dke.commands.kubeopts import dump, kube_options, output_option, subject
from dke.contracts import FLOW_RUN_LABEL, deployment_runs_selector
from dke.runners import kubeclient, kuberuns
from dke.runners.deploy import flow_run_states
from dke.runners.flowrun import api_url_settings
from dke.runners.incluster import run_id_for


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "listed (even when there are no runs)",
            exitcodes.USAGE: None,
            exitcodes.CLUSTER: "cannot reach or use the Kubernetes API",
            exitcodes.INVALID: "invalid environment FILE",
        }
    )
)
@click.argument("environment", metavar="NAME|FILE")
@environment_options
@kube_options
@output_option
def status(environment, overlays, sets, kube_version, target, output) -> None:
    """List the runs of an environment (its Jobs), newest first: run id, phase, start, duration, workers.

    Runs of its Prefect deployment (Jobs made by Prefect's Kubernetes worker, see `dke deploy`)
    are listed too; when the Prefect API (PREFECT_API_URL) answers, a PREFECT column shows
    their flow run's state.
    """

    named = subject(environment, overlays, sets, kube_version)
    with kubeclient.connect(target, named.namespace) as api:
        runs = kuberuns.list_runs(api, named.name)
        runs += deployment_runs(api, named.name)
    runs.sort(key=lambda r: r["created"] or "", reverse=True)
    states = prefect_states([r["flow_run_id"] for r in runs if r.get("flow_run_id")])
    if states is not None:
        for run in runs:
            run["prefect_state"] = states.get(run.get("flow_run_id") or "")
    if output != "text":
        click.echo(dump({"environment": named.name, "namespace": api.namespace, "runs": runs}, output))
        return
    if not runs:
        click.echo(f"no runs of {named.name!r} in namespace {api.namespace!r}", err=True)
        return
    with_prefect = states is not None
    rows = [
        ("RUN ID", "PHASE")
        + (("PREFECT",) if with_prefect else ())
        + ("STARTED", "DURATION", "WORKERS", "JOB")
    ]
    for run in runs:
        workers = "-" if run["workers"] is None else str(run["workers"])
        prefect = (run.get("prefect_state") or "-",) if with_prefect else ()
        rows.append(
            (run["run_id"], run["phase"])
            + prefect
            + (run["start"] or "-", run["duration"], workers, run["job"] or "")
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def deployment_runs(api, env_name: str) -> list[dict]:
    """The runs Prefect's worker started from the environment's deployment: their Jobs carry the
    environment's labels but `managed-by: prefect`, and the flow run's id. The run id is the one
    `dke incluster` derives from it (it names the run's Dask cluster)."""

    jobs = api.list("Job", deployment_runs_selector(env_name)) or []
    workers = kuberuns.running_workers(api) if jobs else {}
    rows = []
    for job in jobs:
        meta, status = job.get("metadata") or {}, job.get("status") or {}
        flow_run_id = (meta.get("labels") or {}).get(FLOW_RUN_LABEL, "")
        try:
            run_id = run_id_for(flow_run_id)
        except Exception:  # noqa: BLE001 - a label someone edited: show the Job anyway
            run_id = ""
        start, end = (
            kuberuns.parse_time(status.get("startTime")),
            kuberuns.parse_time(status.get("completionTime")),
        )
        rows.append(
            {
                "run_id": run_id,
                "job": meta.get("name"),
                "phase": kuberuns.job_phase(job),
                "created": meta.get("creationTimestamp"),
                "start": status.get("startTime"),
                "completion": status.get("completionTime"),
                "duration": kuberuns.duration(start, end) if start else "-",
                "cluster": f"{env_name}-{run_id}",
                "cluster_phase": None,
                "workers": workers.get(f"{env_name}-{run_id}", 0),
                "flow_run_id": flow_run_id,
            }
        )
    return rows


def prefect_states(flow_run_ids: list[str]) -> dict[str, str] | None:
    """flow run id -> state name, when PREFECT_API_URL is set and answers; else None (no column)."""

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return None
    import httpx

    try:
        if httpx.get(f"{url.rstrip('/')}/health", timeout=2).status_code != 200:
            return None
    except httpx.HTTPError:
        return None

    with api_url_settings(url):
        return flow_run_states(flow_run_ids)
