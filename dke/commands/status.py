import click

from dke.commands.common import environment_options
from dke.kube import kube_options, output_option


@click.command(epilog="Exit codes: 0 listed (even when there are no runs); 2 usage error; "
               "3 Kubernetes API or cluster error; 4 invalid environment.")
@click.argument("environment", metavar="NAME|FILE")
@environment_options
@kube_options
@output_option
def status(environment, overlays, sets, kube_version, target, output) -> None:
    """List the runs of an environment (its Jobs), newest first: run id, phase, start, duration, workers."""
    from dke import kube

    subject = kube.subject(environment, overlays, sets, kube_version)
    with kube.connect(target, subject.namespace) as api:
        runs = kube.list_runs(api, subject.name)
    if output != "text":
        click.echo(kube.dump({"environment": subject.name, "namespace": api.namespace, "runs": runs}, output))
        return
    if not runs:
        click.echo(f"no runs of {subject.name!r} in namespace {api.namespace!r}", err=True)
        return
    rows = [("RUN ID", "PHASE", "STARTED", "DURATION", "WORKERS", "JOB")]
    for run in runs:
        workers = "-" if run["workers"] is None else str(run["workers"])
        rows.append((run["run_id"], run["phase"], run["start"] or "-", run["duration"], workers, run["job"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
