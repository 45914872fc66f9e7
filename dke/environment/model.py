"""The environment.yaml model: the single source of the JSON schema.

The core vocabulary (name, namespace, image, flow, min_workers, max_workers,
private_registry, docker_secret, scheduler_spec_file, worker_spec_file, env,
secrets) is a contract: names and defaults are fixed (docs/configuration.md) and never change.
`schemas/environment.schema.json` is generated from these classes (`dke schema`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_ID = "https://raw.githubusercontent.com/dke-dev/dke/main/schemas/environment.schema.json"

# Object names are "<name>-<suffix>" (e.g. "<name>-run-<id>", "<name>-scheduler"):
# keep room for the suffix inside Kubernetes' 63-character label limit.
NAME_MAX = 40
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# path/to/flow.py:function or package.module:function (as `prefect deploy` takes it)
ENTRYPOINT = r"^([^:\s]+\.py|[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*):[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Kubernetes label/annotation keys: optional DNS prefix, then a name segment.
LABEL_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# The image reference grammar of distribution/reference (what the container runtime parses):
# [host[:port]/]path[:tag][@algorithm:hex], path components in lowercase. Explicit character
# classes, not \w: Python's and Rust's \w match any Unicode letter. The separator is `-+`
# rather than the grammar's `-*`, which only adds ambiguity (and exponential backtracking).
_DOMAIN_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = (
    rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
# The environment's name prefixes the Dask scheduler's Service name: a DNS-1035 label
# (a letter first), stricter than the DNS-1123 labels other object names may be.
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Kubernetes integer fields the values become (JobSpec, DaskWorkerGroup replicas).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
SCHEDULER_ADDRESS = r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s]+$"
# A Dask duration: a number and a unit ("500ms", "1s", "2.5s", "1m").
DURATION = r"^[0-9]+(\.[0-9]+)?(ms|s|m)$"

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL, min_length=1, max_length=63)]
# Field(max_length=...) does not tighten a max_length already inside Annotated: own type.
EnvironmentName = Annotated[str, StringConstraints(pattern=DNS_1035_LABEL, min_length=1, max_length=NAME_MAX)]
SecretName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, min_length=1, max_length=253)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME)]
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY, max_length=317)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=63)]
ImageRef = Annotated[str, StringConstraints(pattern=IMAGE, min_length=1)]
# A resource quantity ('500m', '4Gi', 2): its grammar is checked by dke.environment.checks
# (DKE202, as in spec files), whose message says what to write.
Quantity = Annotated[str, StringConstraints(min_length=1)] | int | float
Duration = Annotated[str, StringConstraints(pattern=DURATION)]


class _Strict(BaseModel):
    # defer_build: pydantic's validators are only built when something validates with
    # them (`dke schema`, the in-cluster runner); lint/render use from_validated().
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class Flow(_Strict):
    """Which Prefect flow to run, and with what parameters."""

    entrypoint: str = Field(
        pattern=ENTRYPOINT,
        description="The Prefect 3 flow to run, as `path/to/file.py:function` (relative to this file) "
        "or `package.module:function`, the form `prefect deploy` takes.",
        examples=["flows/etl.py:etl"],
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the flow, checked against its signature (`dke lint`). `dke run` and `dke apply --param name=value` override one.",
        examples=[{"n": 100, "date": "2024-01-01"}],
    )


class Resources(_Strict):
    """Compute resources of a container, as Kubernetes' ResourceRequirements."""

    requests: dict[LabelKey, Quantity] = Field(
        default_factory=dict,
        description="What the scheduler reserves for the container, e.g. `{cpu: 500m, memory: 1Gi}`.",
        examples=[{"cpu": "500m", "memory": "1Gi"}],
    )
    limits: dict[LabelKey, Quantity] = Field(
        default_factory=dict,
        description="The most the container may use; a request must not be more than its limit.",
        examples=[{"memory": "2Gi"}],
    )


class Toleration(_Strict):
    """A Kubernetes toleration: lets the pod onto nodes with a matching taint. Kubernetes' own field names."""

    key: str | None = Field(
        default=None,
        description="The taint key; empty with `operator: Exists` matches every taint.",
        examples=["dedicated"],
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None,
        description="`Equal` (the default) matches `value`; `Exists` matches any value.",
        examples=["Equal"],
    )
    value: str | None = Field(
        default=None, description="The taint value (`operator: Equal`).", examples=["flows"]
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="The taint effect to match; empty matches all effects.",
        examples=["NoSchedule"],
    )
    tolerationSeconds: int | None = Field(  # Kubernetes' name, as users copy it
        default=None,
        le=INT64_MAX,
        description="With `effect: NoExecute`: how long the pod stays on the node after the taint appears.",
        examples=[300],
    )


class Job(_Strict):
    """Settings of the Kubernetes Job that runs each flow run."""

    service_account: DnsLabel | None = Field(
        default=None,
        description="An existing ServiceAccount for the runner pod. By default dke creates "
        "`<name>-runner` with the least privilege the runner needs.",
        examples=["etl-runner"],
    )
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=INT32_MAX,
        description="Retries of a failed runner pod (Job backoffLimit).",
        examples=[0],
    )
    ttl_seconds_after_finished: int | None = Field(
        default=86400,
        ge=0,
        le=INT32_MAX,  # JobSpec.ttlSecondsAfterFinished is an int32
        description="Delete the finished Job (and its cluster) after this many seconds; null keeps it.",
        examples=[86400],
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=INT64_MAX,  # JobSpec.activeDeadlineSeconds is an int64
        description="Kill the run (and tear down its cluster) after this many seconds.",
        examples=[3600],
    )
    safe_to_evict: bool = Field(
        default=False,
        description="Whether the cluster autoscaler may evict the run's pods "
        "(`cluster-autoscaler.kubernetes.io/safe-to-evict`). False keeps a running flow alive.",
        examples=[False],
    )
    resources: Resources = Field(
        default_factory=Resources,
        description="Requests and limits of the runner container (the flow's own process). The scheduler "
        "and workers take theirs from `scheduler_spec_file` / `worker_spec_file`.",
        examples=[{"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}],
    )
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Node labels the runner pod must be scheduled on (its pod's `nodeSelector`).",
        examples=[{"pool": "system"}],
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Tolerations of the runner pod, in Kubernetes' form.",
        examples=[[{"key": "dedicated", "operator": "Equal", "value": "flows", "effect": "NoSchedule"}]],
    )


class Adapt(_Strict):
    """Dask's adaptive knobs: how fast the cluster grows toward max_workers and shrinks back.

    Unset keys take dke's defaults for the local cluster (ADAPT_DEFAULTS in dke.runners.local) and
    Dask's own on Kubernetes, where only target_duration reaches the scheduler (docs/performance.md).
    """

    interval: Duration | None = Field(
        default=None,
        description="How often the local cluster decides how many workers it wants (dke default "
        "`500ms`). Kubernetes: not used, the Dask operator decides every 5 s.",
        examples=["500ms"],
    )
    wait_count: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="How many decisions in a row must find a worker idle before the local cluster "
        "retires it (dke default `6`: 3 s at the default interval, as Dask's 1 s × 3). "
        "Kubernetes: not used, the operator removes at most a quarter of the workers per step "
        "and waits 15 s after each change.",
        examples=[6],
    )
    target_duration: Duration | None = Field(
        default=None,
        description="How long the queued work should take: workers are added until the estimated "
        "time of the queued and running tasks fits (dke default `1s` locally; Dask's `5s` on "
        "Kubernetes unless set, where the scheduler gets it as "
        "DASK_DISTRIBUTED__ADAPTIVE__TARGET_DURATION).",
        examples=["1s"],
    )


# --- deployment: prefect.yaml's words (Prefect 3) ------------------------------------------------
# Cron, rrule and timezone are checked by dke.environment.deployment.check_deployment (positioned diagnostics):
# the parsers they need (croniter, dateutil, zoneinfo) are imported only when `schedules` is set.


class WorkPool(_Strict):
    """The Prefect work pool whose Kubernetes worker runs the deployment's flow runs."""

    name: str | None = Field(
        default=None,
        min_length=1,
        description="The work pool's name (`dke deploy --pool` wins; default `dke`). `dke deploy` creates "
        "it (type kubernetes, dke's base job template) when it is missing; several environments may share it.",
        examples=["k8s-data"],
    )
    work_queue_name: str | None = Field(
        default=None,
        min_length=1,
        description="The pool's work queue for this deployment's runs (default: the pool's default queue).",
        examples=["nightly"],
    )
    job_variables: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra job variables of the deployment, merged over those dke generates "
        "(as `work_pool.job_variables` in prefect.yaml).",
        examples=[{"finished_job_ttl": 3600}],
    )


class _ScheduleCommon(_Strict):
    timezone: str | None = Field(
        default=None,
        min_length=1,
        description="IANA time zone the schedule is read in, e.g. `Europe/Berlin` (default UTC).",
        examples=["America/New_York"],
    )
    active: bool = Field(default=True, description="Whether the schedule creates runs.", examples=[True])
    slug: str | None = Field(
        default=None,
        min_length=1,
        description="A name for the schedule, unique in the deployment (Prefect keeps it across updates).",
        examples=["nightly"],
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of this schedule's runs, merged over the deployment's.",
        examples=[{"n": 10}],
    )


class CronSchedule(_ScheduleCommon):
    """Runs at the times a cron expression names."""

    cron: str = Field(
        min_length=1,
        description="A cron expression (five fields, or a nickname such as `@daily`).",
        examples=["0 2 * * *"],
    )
    day_or: bool = Field(
        default=True,
        description="With both day-of-month and day-of-week set: true runs on either (cron's rule), "
        "false only when both match.",
        examples=[True],
    )


class IntervalSchedule(_ScheduleCommon):
    """Runs every `interval` seconds from `anchor_date`."""

    interval: float = Field(gt=0, description="Seconds between runs.", examples=[3600])
    anchor_date: str | None = Field(
        default=None,
        min_length=1,
        description="An ISO 8601 date-time the intervals count from (default: when the deployment is made).",
        examples=["2026-01-01T00:00:00"],
    )


class RRuleSchedule(_ScheduleCommon):
    """Runs at the times an iCalendar recurrence rule (RFC 5545) names."""

    rrule: str = Field(
        min_length=1,
        description="An RFC 5545 recurrence rule.",
        examples=["FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=6"],
    )


def _schedule_items_by_key(schema: dict) -> None:
    """The schedule kind is chosen by its key (cron, interval, rrule), so that a problem is
    reported against that kind's fields, not against whichever anyOf branch got furthest."""
    # pydantic lists the branches in the annotation's order: cron, interval, rrule.
    refs = dict(zip(("cron", "interval", "rrule"), (b["$ref"] for b in schema["items"]["anyOf"])))
    items: dict = {"$ref": refs["cron"]}  # none of the keys: report against the cron kind
    for key in ("rrule", "interval", "cron"):
        items = {"if": {"required": [key]}, "then": {"$ref": refs[key]}, "else": items}
    schema["items"] = items


class Deployment(_Strict):
    """The Prefect deployment of this environment's flow (`dke deploy`, `dke serve`), in prefect.yaml's words."""

    name: str | None = Field(
        default=None,
        min_length=1,
        description="The deployment's name (default: the environment's name).",
        examples=["nightly"],
    )
    description: str | None = Field(
        default=None, description="Shown in the Prefect UI.", examples=["Nightly ETL"]
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Tags of the deployment and its runs.",
        examples=[["etl", "nightly"]],
    )
    version: str | None = Field(
        default=None, min_length=1, description="The deployment's version.", examples=["0.1.0"]
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Default parameters of its runs, merged over `flow.parameters`.",
        examples=[{"n": 100}],
    )
    paused: bool = Field(
        default=False, description="A paused deployment's schedules create no runs.", examples=[False]
    )
    concurrency_limit: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="Most runs of this deployment at once.", examples=[1]
    )
    work_pool: WorkPool = Field(
        default_factory=WorkPool,
        description="Where `dke deploy`'s runs go: the Kubernetes work pool.",
        examples=[{"name": "k8s-data"}],
    )
    schedules: list[CronSchedule | IntervalSchedule | RRuleSchedule] = Field(
        default_factory=list,
        json_schema_extra=lambda schema: _schedule_items_by_key(schema),
        description="When runs start: each item a `cron`, an `interval` or an `rrule` schedule.",
        examples=[[{"cron": "0 2 * * *", "timezone": "Europe/Berlin"}]],
    )


class Environment(_Strict):
    """One Prefect flow on an ephemeral, autoscaling Dask cluster."""

    name: EnvironmentName = Field(
        description="Name of the environment: lowercase letters, digits and '-', starting with a letter "
        f"(a DNS-1035 label, as Service names must be) and ending with a letter or digit, at most {NAME_MAX} "
        "characters. It prefixes the name of every object dke creates.",
        examples=["etl-nightly"],
    )
    namespace: DnsLabel | None = Field(
        default=None,
        description="Kubernetes namespace (a DNS-1123 label). `-n/--namespace` wins over it; without "
        "either, the kubeconfig context's namespace, else `default` (`dke render` reads no kubeconfig: "
        "`default`).",
        examples=["data"],
    )
    image: str = Field(
        min_length=1,
        pattern=IMAGE,
        description="The flow image. Every container (runner, scheduler, workers) runs it, except "
        "sidecars and init containers listed in `extra_images`; pin a tag or digest. An image reference as the container runtime reads it: `[registry[:port]/]repository"
        "[:tag][@algorithm:digest]`, the repository in lowercase.",
        examples=["ghcr.io/acme/etl-flow:0.1.0"],
    )
    extra_images: list[ImageRef] = Field(
        default_factory=list,
        description="Other images that sidecars and init containers of the scheduler and worker spec files "
        "may run (a log shipper, a proxy, an init step), each an exact image reference as they write it. "
        "Every other container runs `image`, and the Dask containers always do.",
        examples=[["gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"]],
    )
    flow: Flow = Field(description="The Prefect flow to run.", examples=[{"entrypoint": "flows/etl.py:etl"}])
    min_workers: int = Field(
        default=1,
        ge=0,
        le=INT32_MAX,  # the worker group's replicas, the DaskAutoscaler's minimum
        description="Fewest Dask workers. Equal to `max_workers` means a fixed-size cluster.",
        examples=[1],
    )
    max_workers: int = Field(
        default=2, ge=1, le=INT32_MAX, description="Most Dask workers the cluster adapts up to.", examples=[2]
    )
    adapt: Adapt = Field(
        default_factory=Adapt,
        description="How the cluster adapts between `min_workers` and `max_workers`: Dask's "
        "`interval`, `wait_count` and `target_duration` (durations such as `500ms`, `1s`).",
        examples=[{"interval": "500ms", "wait_count": 6, "target_duration": "1s"}],
    )
    private_registry: bool = Field(
        default=False,
        description="The image lives in a private registry: dke ensures the imagePullSecret exists "
        "(created from the `docker_secret` credentials) and every pod references it.",
        examples=[False],
    )
    docker_secret: str = Field(
        default="DOCKER_REGISTRY_CREDENTIALS",
        min_length=1,
        description="Where the registry credentials live (keys docker-server, docker-username, "
        "docker-password, docker-email): an environment variable of this name holding JSON, or the "
        "Prefect Secret block of the same name in lowercase with '-' for '_'.",
        examples=["DOCKER_REGISTRY_CREDENTIALS"],
    )
    image_pull_secret: SecretName | None = Field(
        default=None,
        description="Name of the Kubernetes imagePullSecret. Default with `private_registry`: "
        "`<name>-registry`.",
        examples=["acme-registry"],
    )
    scheduler_spec_file: str | None = Field(
        default=None,
        min_length=1,
        description="A Pod manifest or bare PodSpec (YAML) merged over the default scheduler pod. "
        "Relative to the file that names it (environment or overlay) and inside its directory tree, "
        "symlinks resolved: absolute paths, `..` or symlinks leading out, directories, devices and FIFOs "
        "are refused, and so are files over 1 MiB.",
        examples=["specs/scheduler.yaml"],
    )
    worker_spec_file: str | None = Field(
        default=None,
        min_length=1,
        description="A Pod manifest or bare PodSpec (YAML) merged over the default worker pod. "
        "Relative to the file that names it (environment or overlay) and inside its directory tree, "
        "symlinks resolved: absolute paths, `..` or symlinks leading out, directories, devices and FIFOs "
        "are refused, and so are files over 1 MiB.",
        examples=["specs/worker.yaml"],
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict,
        description="Environment variables for the runner, scheduler and workers. Values are strings: "
        "quote numbers and booleans.",
        examples=[{"LOG_LEVEL": "info"}],
    )
    secrets: list[SecretName] = Field(
        default_factory=list,
        description="Existing Kubernetes Secrets whose keys become environment variables (envFrom) of "
        "the runner, scheduler and workers.",
        examples=[["prefect-api"]],
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Labels added to every object and pod dke creates.",
        examples=[{"team": "data"}],
    )
    annotations: dict[LabelKey, str] = Field(
        default_factory=dict,
        description="Annotations added to every object and pod dke creates.",
        examples=[{"owner": "data-platform@acme.io"}],
    )
    job: Job = Field(
        default_factory=Job,
        description="The Kubernetes Job that runs each flow run: service account, retries, TTL, deadline, "
        "and its runner pod's resources and placement.",
        examples=[{"backoff_limit": 0, "active_deadline_seconds": 3600}],
    )
    executor: Literal["dask", "local"] = Field(
        default="dask",
        description="`dask`: tasks run on the Dask cluster. `local`: tasks run in the flow's own "
        "process, no cluster (Prefect 0.x's LocalExecutor).",
        examples=["dask"],
    )
    scheduler_address: str | None = Field(
        default=None,
        pattern=SCHEDULER_ADDRESS,
        description="Address of an existing Dask scheduler: run the flow's tasks there instead of "
        "creating a cluster (Prefect 0.x's DaskExecutor(address=...)).",
        examples=["tcp://dask-scheduler.data:8786"],
    )

    deployment: Deployment | None = Field(
        default=None,
        description="The Prefect deployment of the flow: name, tags, parameters, work pool and `schedules`, "
        "in prefect.yaml's words (`dke deploy`, `dke serve`; see docs/scheduling.md).",
        examples=[{"name": "nightly", "schedules": [{"cron": "0 2 * * *"}]}],
    )

    @property
    def adaptive(self) -> bool:
        return self.min_workers < self.max_workers

    @property
    def pull_secret_name(self) -> str | None:
        if not self.private_registry:
            return None
        return self.image_pull_secret or f"{self.name}-registry"


def namespace_problem(value: str) -> str | None:
    """Why ``value`` cannot be a namespace (a DNS-1123 label), or None (for --namespace)."""

    if len(value) > 63 or not re.match(DNS_LABEL.replace("$", r"\Z"), value):
        return (
            f"{value!r} is not a valid namespace: at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None


def from_validated(data: dict) -> Environment:
    """Build an Environment from data that the JSON schema already accepted.

    The schema is generated from these models (and drift-tested), so validating again
    with pydantic would only cost its validator build, ~50 ms of every cold `dke lint`.
    tests/test_model.py checks that this equals Environment.model_validate(data).
    """
    return _construct(Environment, data)


def _construct(cls: type[BaseModel], data: dict) -> Any:
    values = {}
    for name, field in cls.model_fields.items():
        nested = (
            field.annotation
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
            else None
        )
        args = getattr(field.annotation, "__args__", ())
        items = (  # list[Model]: each item a model, as validation makes them
            args[0]
            if getattr(field.annotation, "__origin__", None) is list
            and len(args) == 1
            and isinstance(args[0], type)
            and issubclass(args[0], BaseModel)
            else None
        )
        if name not in data:
            if nested is not None:  # default_factory=Job would validate: construct instead
                values[name] = _construct(nested, {})
            continue
        value = data[name]
        if nested is not None:
            value = _construct(nested, value)
        elif items is not None:
            value = [_construct(items, v) for v in value]
        elif isinstance(value, float) and value.is_integer() and field.annotation in (int, int | None):
            value = int(value)  # JSON schema's "integer" admits 2.0; pydantic would make it 2
        values[name] = value
    return cls.model_construct(**values)


def json_schema() -> dict:
    """The published JSON schema of environment.yaml (draft 2020-12)."""
    schema = _key_patterns_as_property_names(Environment.model_json_schema(mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "dke environment",
    }


def _key_patterns_as_property_names(node: Any) -> Any:
    """pydantic writes constrained dict keys as patternProperties, which lets other keys
    through; propertyNames + additionalProperties rejects them, as the model does."""
    if isinstance(node, list):
        return [_key_patterns_as_property_names(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _key_patterns_as_property_names(v) for k, v in node.items()}
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict) and len(patterns) == 1 and "properties" not in node:
        ((pattern, value_schema),) = patterns.items()
        del node["patternProperties"]
        node["propertyNames"] = {"pattern": pattern}
        node["additionalProperties"] = value_schema
    return node
