import time

import click

from dke import exitcodes
from dke.commands.common import environment_options
from dke.commands.kubeopts import kube_options, subject
from dke.diagnostics import DkeError
from dke.runners import kubeclient, kuberuns


@click.command(
    epilog=exitcodes.epilog(
        {
            exitcodes.OK: "printed",
            exitcodes.FAILED: "no such run, or no runner pod yet",
            exitcodes.USAGE: None,
            exitcodes.CLUSTER: "cannot reach or use the Kubernetes API (or the log stream broke off)",
            exitcodes.INVALID: "invalid environment FILE",
        }
    )
)
@click.argument("environment", metavar="NAME|FILE")
@environment_options
@kube_options
@click.option("--run", "run_id", default=None, help="The run (default: the newest).")
@click.option("--follow", is_flag=True, help="Keep streaming until the runner pod ends.")
def logs(environment, overlays, sets, kube_version, target, run_id, follow) -> None:
    """Print the logs of a run's runner pod (the flow's output)."""

    named = subject(environment, overlays, sets, kube_version)
    with kubeclient.connect(target, named.namespace) as api:
        job = kuberuns.find_run(api, named.name, run_id)
        job_name = job["metadata"]["name"]
        pod = kuberuns.runner_pod(api, job_name)
        while follow and (pod is None or (pod.get("status") or {}).get("phase") == "Pending"):
            if kuberuns.job_phase(api.get("Job", job_name) or job) in ("Succeeded", "Failed"):
                break
            time.sleep(1)  # the pod is being scheduled: its logs come once it starts
            pod = kuberuns.runner_pod(api, job_name)
        if pod is None:
            raise DkeError(
                f"job/{job_name} has no runner pod (yet, or any more); see `dke status {named.name}`",
                exitcodes.FAILED,
            )
        kuberuns.stream_logs(api, pod["metadata"]["name"], follow, click.echo)
