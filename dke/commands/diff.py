import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.commands.deploy import _sync_prefect
from dke.commands.kubeopts import kube_options
from dke.objects.compile import compile_environment
from dke.runners import deploy as core
from dke.runners import flowrun, kubeapply, kubeclient


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "no changes",
            exitcodes.FAILED: "changes (kubectl diff's codes: >1 is an error)",
            exitcodes.USAGE: None,
            exitcodes.CLUSTER: "cannot reach or use the Kubernetes API or the Prefect API",
            exitcodes.INVALID: None,
        }
    )
)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@kube_options
def diff(file, overlays, sets, kube_version, target) -> None:
    """Show what `dke apply` would change in the cluster, as a unified diff.

    Each long-lived object is compared with the server's dry-run apply of it, as
    `kubectl diff` does. A run's Job is new on every apply and is not diffed. With a
    `deployment:` and PREFECT_API_URL set, the work pool and the Prefect deployment are
    compared too (what `dke deploy` would change).
    """

    loaded = load_valid(file, overlays, sets, kube_version)
    env = loaded.env
    with kubeclient.connect(target, env.namespace) as api:
        objects = compile_environment(loaded, None, api.namespace)
        changes = 0
        if env.pull_secret_name and api.get("Secret", env.pull_secret_name) is None:
            click.echo(
                f"+ secret/{env.pull_secret_name} would be created (kubernetes.io/dockerconfigjson, "
                f"from {env.docker_secret})"
            )
            changes += 1
        for d in kubeapply.diff_objects(api, objects):
            if d.changed:
                click.echo(d.text.rstrip("\n"))
                changes += 1
    if getattr(env, "deployment", None) is not None:
        changes += _deployment_changes(loaded, objects)
    click.echo(f"{changes} object(s) would change; apply also creates the run's Job.", err=True)
    raise SystemExit(exitcodes.FAILED if changes else exitcodes.OK)


def _deployment_changes(loaded, objects: list[dict]) -> int:
    """What `dke deploy` would change in Prefect (the work pool, the deployment), printed."""

    url = flowrun.configured_api_url()
    if not url:
        click.echo("deployment: not compared (PREFECT_API_URL is not set)", err=True)
        return 0
    env = loaded.env
    pool = core.pool_name(env)
    flow_name, schema = core.flow_name_and_schema(env.flow.entrypoint, loaded.base_dir)
    spec = core.deployment_spec(loaded, objects, flow_name, pool, schema)
    changed = 0
    for change in _sync_prefect(url, pool, spec, dry_run=True):
        if change.action != "unchanged":
            click.echo(change.text())
            if change.diff:
                click.echo(change.diff.rstrip("\n"))
            changed += 1
    return changed
