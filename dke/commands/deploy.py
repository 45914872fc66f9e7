"""`dke deploy`: the environment's Prefect deployment, run by Prefect's Kubernetes worker."""

from __future__ import annotations

import click

from dke import exitcodes
from dke.commands.apply import _credentials
from dke.commands.common import environment_options, load_valid
from dke.commands.kubeopts import kube_options
from dke.diagnostics import DkeError
from dke.objects.compile import compile_environment
from dke.runners import deploy as core
from dke.runners import flowrun, kubeapply, kubeclient
from dke.runners.flowrun import api_url_settings

EPILOG = exitcodes.epilog(
    {
        exitcodes.OK: "deployed (or, with --dry-run, nothing would change)",
        exitcodes.FAILED: "with --dry-run: changes",
        exitcodes.USAGE: "usage error (also: no PREFECT_API_URL)",
        exitcodes.CLUSTER: "cannot reach or use the Kubernetes API or the Prefect API",
        exitcodes.INVALID: "invalid environment or flow file",
    }
)


@click.command(epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@kube_options
@click.option(
    "--pool",
    default=None,
    metavar="NAME",
    help="The Kubernetes work pool (wins over deployment.work_pool.name; default `dke`). "
    "Created with dke's base job template when missing.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would change in Prefect (work pool, deployment) and send nothing; exit 1 "
    "when something would change.",
)
def deploy(file, overlays, sets, kube_version, target, pool, dry_run) -> None:
    """Create or update FILE's Prefect deployment and the standing objects its runs need.

    Applies the ServiceAccount, Role, RoleBinding (and the pull Secret when missing) in the
    cluster, creates the work pool if missing (type kubernetes, a base job template that makes
    dke's Job), and creates or updates the deployment: entrypoint, the flow's parameter schema,
    parameters, schedules, and job variables holding the environment's Job. Idempotent: what
    already matches is left alone. Start the worker with
    `prefect worker start --pool NAME --type kubernetes`.
    """

    loaded = load_valid(file, overlays, sets, kube_version)
    env = loaded.env
    url = flowrun.configured_api_url()
    if not url:
        raise DkeError(
            "dke deploy needs the Prefect API the worker uses: set PREFECT_API_URL (a deployment "
            "on a temporary server would vanish with it; `dke serve` runs one here)",
            exitcodes.USAGE,
        )
    pool = core.pool_name(env, pool)
    flow_name, schema = core.flow_name_and_schema(env.flow.entrypoint, loaded.base_dir)
    flowrun.check_api(url, then="nothing was applied")  # before anything is applied in the cluster

    with kubeclient.connect(target, env.namespace) as api:
        objects = compile_environment(loaded, None, api.namespace)
        standing = [o for o in objects if o["kind"] != "Job"]
        spec = core.deployment_spec(loaded, objects, flow_name, pool, schema)
        if not dry_run:
            if env.executor == "dask" and not env.scheduler_address:
                kubeapply.preflight(api, env.adaptive)
            if env.pull_secret_name:
                action = kubeapply.ensure_pull_secret(
                    api, env.pull_secret_name, env.name, lambda: _credentials(env, None)
                )
                click.echo(f"secret/{env.pull_secret_name} {action}")
            kubeapply.apply_objects(api, standing, on_applied=lambda a: click.echo(a.text()))
    changes = _sync_prefect(url, pool, spec, dry_run)
    changed = any(c.action != "unchanged" for c in changes)
    for change in changes:
        click.echo(change.text() + (" (dry run)" if dry_run and change.action != "unchanged" else ""))
        if dry_run and change.diff:
            click.echo(change.diff.rstrip("\n"))
    if dry_run:
        raise SystemExit(exitcodes.FAILED if changed else exitcodes.OK)
    click.echo(
        f"runs go to work pool {pool!r}: start its worker with "
        f"`prefect worker start --pool {pool} --type kubernetes`",
        err=True,
    )


def _sync_prefect(url: str, pool: str, spec, dry_run: bool) -> list:
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        with api_url_settings(url), get_client(sync_client=True) as client:
            pool_change = core.ensure_pool(client, pool, spec.job_variables[core.MANIFEST_VARIABLE], dry_run)
            deployment_change, _ = core.ensure_deployment(client, spec, dry_run)
    except (httpx.HTTPError, PrefectHTTPStatusError) as e:
        raise DkeError(f"Prefect API at {url}: {core.prefect_error(e)}", exitcodes.CLUSTER) from None
    return [pool_change, deployment_change]
