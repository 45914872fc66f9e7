import click

from dke.commands.common import environment_options
from dke.runners.kube import kube_options


@click.command(
    epilog="Exit codes: 0 printed; 1 no such run or no runner pod yet; 2 usage error; "
    "3 Kubernetes API or cluster error."
)
@click.argument("environment", metavar="NAME|FILE")
@environment_options
@kube_options
@click.option("--run", "run_id", default=None, help="The run (default: the newest).")
@click.option("--follow", is_flag=True, help="Keep streaming until the runner pod ends.")
def logs(environment, overlays, sets, kube_version, target, run_id, follow) -> None:
    """Print the logs of a run's runner pod (the flow's output)."""
    import time

    from dke import exitcodes
    from dke.diagnostics import DkeError
    from dke.runners import kube

    subject = kube.subject(environment, overlays, sets, kube_version)
    with kube.connect(target, subject.namespace) as api:
        job = kube.find_run(api, subject.name, run_id)
        job_name = job["metadata"]["name"]
        pod = kube.runner_pod(api, job_name)
        while follow and (pod is None or (pod.get("status") or {}).get("phase") == "Pending"):
            if kube.job_phase(api.get("Job", job_name) or job) in ("Succeeded", "Failed"):
                break
            time.sleep(1)  # the pod is being scheduled: its logs come once it starts
            pod = kube.runner_pod(api, job_name)
        if pod is None:
            raise DkeError(
                f"job/{job_name} has no runner pod (yet, or any more); see `dke status {subject.name}`",
                exitcodes.FAILED,
            )
        kube.stream_logs(api, pod["metadata"]["name"], follow, click.echo)
