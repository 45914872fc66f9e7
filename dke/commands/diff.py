import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.kube import kube_options


@click.command(epilog="Exit codes (kubectl diff's): 0 no changes; 1 changes; >1 error "
               "(2 usage, 3 Kubernetes API or cluster, 4 invalid environment).")
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@kube_options
def diff(file, overlays, sets, kube_version, target) -> None:
    """Show what `dke apply` would change in the cluster, as a unified diff.

    Each long-lived object is compared with the server's dry-run apply of it, as
    `kubectl diff` does. A run's Job is new on every apply and is not diffed.
    """
    from dke import kube
    from dke.compile import compile_environment

    loaded = load_valid(file, overlays, sets, kube_version)
    env = loaded.env
    with kube.connect(target, env.namespace) as api:
        objects = compile_environment(loaded, None, api.namespace)
        changes = 0
        if env.pull_secret_name and api.get("Secret", env.pull_secret_name) is None:
            click.echo(f"+ secret/{env.pull_secret_name} would be created (kubernetes.io/dockerconfigjson, "
                       f"from {env.docker_secret})")
            changes += 1
        for d in kube.diff_objects(api, objects):
            if d.changed:
                click.echo(d.text.rstrip("\n"))
                changes += 1
    click.echo(f"{changes} object(s) would change; apply also creates the run's Job.", err=True)
    raise SystemExit(exitcodes.FAILED if changes else exitcodes.OK)
