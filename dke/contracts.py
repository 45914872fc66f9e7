"""Names shared between what dke writes into a cluster and what it reads back.

The compiler puts these labels on every object; `status`, `logs`, `delete`, `apply --wait`,
the in-cluster runner and the deployment's job template find the objects by them. One
definition, so that a renamed label cannot silently blind the commands that select by it.
Light on purpose (no imports): the in-cluster runner and the CLI both import it.
"""

# dke's own labels (on every object it makes)
MANAGED_BY = "app.kubernetes.io/managed-by"  # "dke"; Prefect's worker sets "prefect" on its Jobs
APP_NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
ENVIRONMENT_LABEL = "dke.dev/environment"
RUN_ID_LABEL = "dke.dev/run-id"
MANAGER = "dke"  # the value of MANAGED_BY on what dke applies

# The Dask Kubernetes operator: its API group and the labels it puts on its pods.
DASK_GROUP = "kubernetes.dask.org"
DASK_CLUSTER_NAME_LABEL = "dask.org/cluster-name"
DASK_COMPONENT_LABEL = "dask.org/component"

# Kubernetes' label on a Job's pods (the older unprefixed name is still set by older servers).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")

# Prefect's Kubernetes worker labels the Jobs it creates with their flow run's id.
FLOW_RUN_LABEL = "prefect.io/flow-run-id"


def environment_selector(env_name: str) -> str:
    """The objects dke applied for an environment (its runs' Jobs included)."""
    return f"{MANAGED_BY}={MANAGER},{ENVIRONMENT_LABEL}={env_name}"


def deployment_runs_selector(env_name: str) -> str:
    """The Jobs Prefect's Kubernetes worker made from the environment's deployment: it keeps dke's
    labels but sets `managed-by: prefect`."""
    return f"{ENVIRONMENT_LABEL}={env_name},{MANAGED_BY}=prefect"


def run_selector(env_name: str, run_id: str) -> str:
    """One run of an environment."""
    return f"{environment_selector(env_name)},{RUN_ID_LABEL}={run_id}"
