"""`dke incluster`: the entrypoint of a run's Job (hidden from `dke --help`).

Everything it needs comes from the Job's environment (see dke.runners.incluster and
docs/in-cluster.md); it takes no options so that the Job's command stays `dke incluster`.
"""

from __future__ import annotations

import click

from dke.runners import incluster as runner


@click.command(hidden=True, context_settings={"help_option_names": ["-h", "--help"]})
def incluster() -> int:
    """(internal) Run the flow of the Job that started this pod on its own Dask cluster.

    Reads DKE_RUN_SPEC and the downward-API variables DKE_JOB_NAME, DKE_JOB_UID, DKE_NAMESPACE,
    DKE_POD_NAME, DKE_POD_IP. Exit codes: 0 flow run completed, 1 flow run failed, 3 cluster or
    API error, 4 invalid run spec or one this image's dke cannot read (compiled by another dke:
    rebuild the image, see docs/flow-image.md), 130 terminated (SIGTERM); the cluster is torn
    down in every case. Both checks come before anything is created; differing dke, Prefect or
    distributed versions between the compiling CLI and the image are a warning line.

    Under Prefect's Kubernetes worker (a deployment's run, `dke deploy`), PREFECT__FLOW_RUN_ID
    names the flow run to run: that run is executed, no new one is created; a cancel from
    Prefect tears the cluster down and leaves it Cancelled (exit 130).
    """

    runner.configure_logging()
    run = runner.read_run()
    runner.warn_version_skew(run.spec)
    return runner.run_in_cluster(run, runner.cluster_factory())
