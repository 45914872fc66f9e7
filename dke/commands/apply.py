import os

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid, params_option
from dke.commands.kubeopts import (
    DRY_RUN_CHOICES,
    BareDryRunCommand,
    dump,
    kube_options,
    output_option,
    parse_duration,
)
from dke.diagnostics import DkeError
from dke.objects.compile import compile_environment, new_run_id
from dke.runners import credentials, kubeapply, kubeclient, kuberuns

EPILOG = exitcodes.epilog(
    {
        exitcodes.OK: "applied (with --wait: the flow run completed)",
        exitcodes.FAILED: "the flow run failed (with --wait/--follow)",
        exitcodes.USAGE: None,
        exitcodes.CLUSTER: "cannot reach or use the Kubernetes API, the Dask operator is missing, the "
        "registry credentials are not found, or --timeout was reached (nothing half-done goes unreported)",
        exitcodes.INVALID: None,
        exitcodes.INTERRUPTED: "interrupted (what was applied is listed)",
    }
)


@click.command(cls=BareDryRunCommand, epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@params_option
@kube_options
@click.option(
    "--dry-run",
    type=click.Choice(DRY_RUN_CHOICES),
    default="none",
    show_default=True,
    help="client: print what would be sent, contact no cluster (the registry credentials are still "
    "looked up); server: send everything with dryRun=All (validated and admitted, nothing persisted). "
    "`--dry-run` alone: client.",
)
@click.option(
    "--wait", is_flag=True, help="Follow the run to its end with a live status; exit 0/1 like the flow."
)
@click.option("--follow", is_flag=True, help="Stream the runner pod's logs (implies --wait).")
@click.option(
    "--timeout",
    default=None,
    metavar="DURATION",
    help="With --wait/--follow: give up waiting after this long (90s, 5m, 1h), exit 3; the run goes on.",
)
@click.option(
    "--run-id",
    default=None,
    help="Use this run id instead of a fresh one: applying again with it creates no second Job.",
)
@click.option(
    "--docker-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="A docker config.json to take the registry credentials from (last resort; see docs).",
)
@click.option(
    "--force-conflicts",
    is_flag=True,
    help="Take over fields another field manager owns (server-side apply --force-conflicts).",
)
@output_option
def apply(
    file,
    overlays,
    sets,
    kube_version,
    params,
    target,
    dry_run,
    wait,
    follow,
    timeout,
    run_id,
    docker_config,
    force_conflicts,
    output,
) -> None:
    """Run the flow on Kubernetes: check the cluster, create the objects and the run's Job.

    Long-lived objects (ServiceAccount, Role, RoleBinding) are server-side applied with field
    manager `dke`; each run is one Job, created once. With `private_registry: true` the
    imagePullSecret is created from the `docker_secret` credentials when it is missing.
    """

    wait_for = parse_duration(timeout)
    loaded = load_valid(file, overlays, sets, kube_version, params=params)  # --param: into the run spec
    env = loaded.env
    run_id = run_id or new_run_id()

    if dry_run != "none" and (wait or follow):
        click.echo(f"dke: warning: --wait/--follow ignored: a {dry_run} dry run starts no run", err=True)
    if dry_run == "client":  # no request at all; the namespace still follows the usual precedence
        if env.pull_secret_name:  # what a real apply would need first: fail here, not there
            _credentials(env, docker_config)
        namespace = _offline_namespace(target, env.namespace)
        objects = compile_environment(loaded, run_id, namespace)
        if output != "text":
            click.echo(dump(objects, output))
            return
        if env.pull_secret_name:
            click.echo(f"secret/{env.pull_secret_name} ensured (client dry run; created only if missing)")
        for obj in kubeapply.sort_objects(objects):
            click.echo(
                f"{kubeapply.obj_ref(obj)} {'created' if obj['kind'] == 'Job' else 'serverside-applied'} "
                "(client dry run)"
            )
        return

    with kubeclient.connect(target, env.namespace) as api:
        objects = compile_environment(loaded, run_id, api.namespace)
        server_dry = dry_run == "server"
        result = kubeapply.ApplyResult(run_id=run_id)
        needs_cluster = env.executor == "dask" and not env.scheduler_address
        stage = "before anything was applied"
        try:
            if needs_cluster:
                kubeapply.preflight(api, env.adaptive)
            if env.pull_secret_name:
                stage = f"during setup; secret/{env.pull_secret_name} may or may not have been created"
                action = kubeapply.ensure_pull_secret(
                    api,
                    env.pull_secret_name,
                    env.name,
                    lambda: _credentials(env, docker_config),
                    dry_run=server_dry,
                )
                done = kubeapply.Applied(
                    "Secret",
                    env.pull_secret_name,
                    api.namespace,
                    action + (" (server dry run)" if server_dry and action == "created" else ""),
                )
                result.applied.append(done)
                _print_applied(done, output)
        except KeyboardInterrupt:
            raise kubeapply.Interrupted(f"interrupted {stage}", exitcodes.INTERRUPTED) from None
        kubeapply.apply_objects(
            api,
            objects,
            dry_run=server_dry,
            force_conflicts=force_conflicts,
            on_applied=lambda a: _print_applied(a, output),
            result=result,
        )
        if output != "text":
            click.echo(
                dump(
                    {
                        "namespace": api.namespace,
                        "runId": run_id,
                        "dryRun": dry_run,
                        "applied": [a.__dict__ for a in result.applied],
                    },
                    output,
                )
            )
        if server_dry or result.job is None:
            return
        job_name = result.job["metadata"]["name"]
        if not (wait or follow):
            click.echo(
                f"run {run_id} started: `dke status {env.name}`, "
                f"`dke logs {env.name} --run {run_id} --follow`",
                err=True,
            )
            return
        try:
            code = kuberuns.wait_for_run(
                api,
                result.job,
                timeout=wait_for,
                follow=follow,
                status=lambda line: click.echo(line, err=True),
                write_log=click.echo,
                min_workers=env.min_workers,
                max_workers=env.max_workers,
                interval=_poll_interval(),
            )
        except KeyboardInterrupt:
            raise kubeapply.Interrupted(
                f"interrupted: stopped waiting; run {run_id} (job/{job_name}) goes on in the "
                f"cluster (`dke delete {env.name} --run {run_id}` stops it)",
                exitcodes.INTERRUPTED,
            ) from None
    if code != exitcodes.OK:
        raise DkeError(
            f"run {run_id} failed (job/{job_name}); see `dke logs {env.name} --run {run_id}`", code
        )
    click.echo(f"run {run_id} succeeded", err=True)


def _print_applied(applied, output: str) -> None:
    if output == "text":
        click.echo(applied.text())


def _credentials(env, docker_config):

    creds = credentials.lookup(env.docker_secret, env.image, docker_config)
    kubeclient.register_secret(*creds.secret_values())
    return creds


def _offline_namespace(target, env_namespace):
    """Namespace precedence without contacting the cluster (kubeconfig read only, if any)."""
    if target.namespace or env_namespace:
        return target.namespace or env_namespace

    try:
        with kubeclient.connect(target, None) as api:
            return api.namespace
    except DkeError:
        return "default"


def _poll_interval() -> float:

    return float(os.environ.get("DKE_POLL_INTERVAL", "2"))
