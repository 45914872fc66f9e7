import json

import click

from dke import exitcodes
from dke.commands.common import environment_options, load_valid
from dke.diagnostics import DkeError, format_all, has_errors, sort_key
from dke.environment.model import namespace_problem
from dke.objects.compile import check_run_id, compile_traced
from dke.objects.verify import validate_objects
from dke.objects.yamlwriter import as_comment, to_yaml


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "printed",
            exitcodes.FAILED: "--validate found problems",
            exitcodes.USAGE: None,
            exitcodes.INVALID: None,
        }
    )
)
@click.argument("file", type=click.Path(dir_okay=False))
@environment_options
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="yaml: a stream of documents; json: a list of objects.",
)
@click.option("--run-id", help="The run id in the Job's name and labels (default: a stable placeholder).")
@click.option(
    "-n",
    "--namespace",
    callback=lambda ctx, param, value: check_namespace(value),
    help="Namespace; wins over the environment's `namespace` (neither: `default`).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Annotate every value with where it came from (YAML only), and say which process runs where.",
)
@click.option(
    "--validate",
    "validate",
    is_flag=True,
    help="Validate the objects offline first (as `dke lint`); print nothing if they are invalid.",
)
def render(file, overlays, sets, kube_version, fmt, run_id, namespace, explain, validate) -> None:
    """Print the Kubernetes objects FILE compiles to, in apply order.

    The output is what `dke apply` creates for one run, except the imagePullSecret,
    which apply creates from the registry credentials and render only names (in a
    comment): its data is never printed. Without --run-id the Job is named with the
    placeholder run id `run-id`, so that the output is the same every time.
    """

    if explain and fmt != "yaml":
        raise DkeError("--explain writes comments, which only the yaml output has", exitcodes.USAGE)
    if run_id is not None:
        check_run_id(run_id)
    loaded = load_valid(file, overlays, sets, kube_version)
    compiled = compile_traced(loaded, run_id, namespace)
    if validate:  # the very objects about to be printed
        problems = sorted(validate_objects(loaded, kube_version, compiled), key=sort_key)
        if problems:
            click.echo(format_all(problems, "text"), err=True)
        if has_errors(problems):
            raise DkeError(
                f"{file}: the compiled objects are invalid; fix the problems above", exitcodes.FAILED
            )
    if fmt == "json":
        click.echo(json.dumps(compiled.objects, indent=2))
    else:
        click.echo(yaml_stream(compiled, loaded.env, explain), nl=False)


def check_namespace(value: str | None) -> str | None:
    """--namespace as a click callback: a bad one is a usage error (exit 2) before anything is read."""

    problem = None if value is None else namespace_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def processes(compiled, env) -> str:
    """Which process runs where, and from which image: what the flow image must hold."""
    job = compiled.objects[-1]["spec"]["template"]["spec"]["containers"][0]
    runner = f"  the Job's pod (runner):  {' '.join(job['command'])}: "
    rows = [
        f"Which process runs where; every container dke creates runs the flow image {env.image}"
        + (", except those listed below with an extra image:" if compiled.extra_images else ":")
    ]
    if compiled.cluster is not None:
        rows.append(runner + "creates the DaskCluster, runs the flow on it, tears it down")
        for role, where in (("scheduler", "the scheduler pod"), ("worker", "each worker pod")):
            pod = compiled.cluster["spec"][role]["spec"]
            for c in pod["containers"]:
                words = [*c.get("command", []), *c.get("args", [])]
                what = " ".join(words) if words else "(the image's entrypoint)"
                extra = ", and the flow's Prefect tasks" if role == "worker" and c["name"] == role else ""
                rows.append(f"  {where} ({c['name']}):  {what}{extra}")
    elif env.scheduler_address:
        # Nothing Dask is created here: say whose the cluster is, and what its workers then need.
        rows += [
            runner + f"runs the flow, its tasks on the existing Dask scheduler at {env.scheduler_address}",
            "  that scheduler and its workers:  not dke's (it neither creates, scales nor deletes them, "
            "nor picks their image); the workers run the flow's Prefect tasks, so they need the "
            "packages those tasks import and their own PREFECT_API_URL",
            "  min_workers and max_workers (in the run spec below) are not used: that cluster has "
            "the workers it has",
        ]
    else:
        rows += [
            runner + "runs the flow and its tasks in the runner (executor: local)",
            "  min_workers and max_workers (in the run spec below) are not used: there are no Dask workers",
        ]
    for use in compiled.extra_images:
        kind = "init container" if use.group == "initContainers" else "container"
        rows.append(
            f"  the {use.role} pod's {kind} {use.container} runs {use.image}: allowed by extra_images "
            f"({use.allowed_by.describe()})"
        )
    return "\n".join(rows)


def yaml_stream(compiled, env, explain: bool = False) -> str:

    out = []
    if compiled.pull_secret:
        out.append(
            as_comment(
                f"Secret {compiled.pull_secret} (type kubernetes.io/dockerconfigjson) is not rendered: `dke apply` "
                f"creates it in namespace {compiled.namespace} from the {env.docker_secret} credentials when it "
                "does not exist yet. Its data is never printed."
            )
        )
    for obj, origins in zip(compiled.objects, compiled.origins):
        out.append("---\n")
        out.append(to_yaml(obj, origins if explain else None))
    if explain:
        out.append("\n")
        out.append(as_comment(processes(compiled, env)))
        besides = " (besides the DaskCluster)" if compiled.cluster is not None else ""
        out.append(
            as_comment(f"The run the Job's DKE_RUN_SPEC describes{besides}, with where each value came from:")
        )
        out.append(as_comment(to_yaml(compiled.run, compiled.run_origins)))
    if compiled.cluster is not None:
        # Not an object to apply (the runner creates it, owned by the Job): shown for review.
        out.append("\n")
        out.append(
            as_comment(
                "The DaskCluster the runner creates at run time through dask-kubernetes; it travels in the "
                "Job's DKE_RUN_SPEC" + (", with where each value came from" if explain else "") + ":"
            )
        )
        out.append(as_comment(to_yaml(compiled.cluster, compiled.cluster_origins if explain else None)))
    return "".join(out)
