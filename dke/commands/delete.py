import click

from dke import exitcodes
from dke.commands.common import environment_options
from dke.commands.kubeopts import kube_options, subject
from dke.diagnostics import DkeError
from dke.runners import kubeapply, kubeclient


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "deleted",
            exitcodes.FAILED: "no such run",
            exitcodes.USAGE: None,
            exitcodes.CLUSTER: "cannot reach or use the Kubernetes API",
            exitcodes.INVALID: "invalid environment FILE",
        }
    )
)
@click.argument("environment", metavar="NAME|FILE")
@environment_options
@kube_options
@click.option("--run", "run_id", default=None, help="Delete this run: its Job and everything the Job owns.")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Delete every object dke made for the environment: runs, RBAC, ServiceAccount, pull secret.",
)
def delete(environment, overlays, sets, kube_version, target, run_id, everything) -> None:
    """Delete a run (foreground propagation: its pods and Dask cluster go first), or a whole environment."""

    if bool(run_id) == everything:
        raise DkeError(
            "say what to delete: --run ID (one run) or --all (everything of the environment)", exitcodes.USAGE
        )
    named = subject(environment, overlays, sets, kube_version)
    with kubeclient.connect(target, named.namespace) as api:
        if everything:
            deleted = kubeapply.delete_environment(api, named.name)
        else:
            deleted = kubeapply.delete_run(api, named.name, run_id)
    for line in deleted:
        click.echo(line)
    if not deleted:
        click.echo(f"nothing of {named.name!r} found in namespace {api.namespace!r}", err=True)
