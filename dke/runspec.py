"""What a run's Job carries to the in-cluster runner: the contract between
`dke.compile` (producer, at render/apply time) and `dke.incluster` (consumer, in the pod).

The Job's runner container gets it as JSON in the environment variable
``DKE_RUN_SPEC``, next to downward-API variables that identify the Job, so that
nothing but the Job has to exist for a run to start, and nothing outlives it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dke.model import Flow

RUN_SPEC_ENV = "DKE_RUN_SPEC"
# Filled by the downward API in the Job's pod template (see dke.compile).
JOB_NAME_ENV = "DKE_JOB_NAME"  # metadata.labels['batch.kubernetes.io/job-name']
JOB_UID_ENV = "DKE_JOB_UID"  # metadata.labels['batch.kubernetes.io/controller-uid']
NAMESPACE_ENV = "DKE_NAMESPACE"  # metadata.namespace
POD_NAME_ENV = "DKE_POD_NAME"  # metadata.name
POD_IP_ENV = "DKE_POD_IP"  # status.podIP (workers reach a runner-local Prefect server here)


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(description="The environment's name.")
    run_id: str = Field(description="This run's id (also in the Job's name and labels).")
    flow: Flow
    min_workers: int
    max_workers: int
    executor: Literal["dask", "local"] = "dask"
    scheduler_address: str | None = None
    # The whole DaskCluster object (apiVersion kubernetes.dask.org/v1, kind DaskCluster,
    # metadata, spec{scheduler{spec,service}, worker{replicas,spec}}), as dask-kubernetes'
    # operator KubeCluster(custom_cluster_spec=...) takes it. None when no cluster is made.
    cluster: dict[str, Any] | None = None

    def to_env_value(self) -> str:
        # Plain json rather than model_dump_json, which would first build pydantic's
        # serializer: compile (and so lint and render) stays free of that cost.
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        data["flow"] = {"entrypoint": self.flow.entrypoint, "parameters": self.flow.parameters}
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_env_value(cls, value: str) -> "RunSpec":
        return cls.model_validate_json(value)
