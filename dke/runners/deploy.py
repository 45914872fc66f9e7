"""The Prefect deployment of an environment: what `dke deploy` and `dke serve` send to Prefect.

Pure core first (no Prefect import, no I/O): from a `Loaded` environment and its compiled
objects, the deployment (name, parameters, schedules in the API's JSON, job variables) and
the work pool's base job template that Prefect's Kubernetes worker (prefect-kubernetes)
turns into dke's Job for each flow run. Then the I/O half: read what the Prefect API has,
say what would change, create or update it.

How a flow run reaches dke's runner (see docs/scheduling.md):

- the pool's base job template takes one variable, `job_manifest`: the whole Job, as
  `dke render` compiles it (runner container `dke incluster`, ServiceAccount, labels, pull
  secrets, env, resources), with `generateName` instead of a name and the run id left as
  the placeholder. Its default is the manifest of the environment that created the pool;
  each deployment carries its own in its job variables, so environments can share a pool;
- the worker adds PREFECT__FLOW_RUN_ID (and PREFECT_API_URL) to the runner container;
  `dke incluster` sees it, derives the run id (and so the Dask cluster's name) from that
  flow run's id, and runs that flow run: no second flow run is created.

The worker checks that the first container is named `prefect-job` and that the pod spec
has `parallelism: 1` and `completions: 1` (its own template's quirk): the manifest has them.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dke import exitcodes
from dke.contracts import ENVIRONMENT_LABEL, RUN_ID_LABEL
from dke.diagnostics import DkeError
from dke.environment.deployment import (  # noqa: F401 - part of this module's interface
    DEFAULT_POOL,
    DUPLICATE_SLUG,
    INVALID_SCHEDULE,
    anchor_problem,
    check_deployment,
    cron_problem,
    deployment_name,
    deployment_of,
    pool_name,
    rrule_problem,
    timezone_problem,
)
from dke.runners.flowrun import prepare_import_path

POOL_TYPE = "kubernetes"
# prefect-kubernetes' KubernetesWorkerJobConfiguration wants this name for the first container.
WORKER_CONTAINER = "prefect-job"
# The variable of dke's base job template that carries the whole Job.
MANIFEST_VARIABLE = "job_manifest"


def schedule_json(schedule) -> dict[str, Any]:
    """One model schedule as the Prefect API's DeploymentScheduleCreate JSON."""
    tz = schedule.timezone or "UTC"
    if hasattr(schedule, "cron"):
        inner: dict[str, Any] = {"cron": schedule.cron, "timezone": tz, "day_or": schedule.day_or}
    elif hasattr(schedule, "interval"):
        inner = {"interval": float(schedule.interval), "timezone": tz}
        if schedule.anchor_date:
            inner["anchor_date"] = schedule.anchor_date
    else:
        inner = {"rrule": schedule.rrule, "timezone": tz}
    return {
        "schedule": inner,
        "active": schedule.active,
        "slug": schedule.slug,
        "parameters": dict(schedule.parameters),
    }


# ---------------------------------------------------------------------------
# the Job the worker creates (pure)


def job_manifest(objects: list[dict]) -> dict:
    """The compiled run Job as the worker's job manifest: one per flow run, so no fixed name and
    no fixed run id label (the flow run's labels identify it); the runner container renamed."""
    job = next((o for o in objects if o.get("kind") == "Job"), None)
    if job is None:
        raise ValueError("the compiled objects hold no Job")
    job = copy.deepcopy(job)
    meta = job["metadata"]
    labels = meta.get("labels") or {}
    env_name = labels[ENVIRONMENT_LABEL]
    meta.pop("name", None)
    meta["generateName"] = f"{env_name}-"
    labels.pop(RUN_ID_LABEL, None)
    meta.setdefault("annotations", {})
    template = job["spec"]["template"]
    (template.get("metadata") or {}).get("labels", {}).pop(RUN_ID_LABEL, None)
    pod = template["spec"]
    runner = pod["containers"][0]
    runner["name"] = WORKER_CONTAINER
    runner["args"] = []  # present: else the worker appends `prefect flow-run execute`
    pod["parallelism"] = 1
    pod["completions"] = 1
    return job


def base_job_template(manifest: dict) -> dict:
    """The work pool's base job template: the Job comes whole from the `job_manifest` variable."""
    namespace = manifest["metadata"].get("namespace", "default")
    return {
        "job_configuration": {
            "command": "{{ command }}",
            "env": "{{ env }}",
            "labels": "{{ labels }}",
            "name": "{{ name }}",
            "namespace": "{{ namespace }}",
            "job_manifest": "{{ " + MANIFEST_VARIABLE + " }}",
        },
        "variables": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "title": "Name",
                    "description": "Name given to created infrastructure.",
                },
                "env": {
                    "type": "object",
                    "title": "Environment Variables",
                    "additionalProperties": {"type": "string"},
                    "description": "Environment variables set on the runner container.",
                },
                "labels": {
                    "type": "object",
                    "title": "Labels",
                    "additionalProperties": {"type": "string"},
                    "description": "Labels added to the Job.",
                },
                "command": {
                    "type": "string",
                    "title": "Command",
                    "description": "Unused: the runner container runs `dke incluster`.",
                },
                "namespace": {
                    "type": "string",
                    "title": "Namespace",
                    "default": namespace,
                    "description": "The namespace the Job is created in (the environment's).",
                },
                MANIFEST_VARIABLE: {
                    "type": "object",
                    "title": "Job manifest (dke)",
                    "default": manifest,
                    "description": "The Job dke compiles for the environment (`dke render`); "
                    "each dke deployment sets its own.",
                },
            },
        },
    }


def is_dke_template(template: dict | None) -> bool:
    props = ((template or {}).get("variables") or {}).get("properties") or {}
    conf = (template or {}).get("job_configuration") or {}
    return MANIFEST_VARIABLE in props and conf.get("job_manifest") == "{{ " + MANIFEST_VARIABLE + " }}"


@dataclass
class DeploymentSpec:
    """Everything `dke deploy` sends for the deployment, as the API's JSON (pure data)."""

    name: str
    flow_name: str
    entrypoint: str
    description: str | None
    tags: list[str]
    version: str | None
    parameters: dict[str, Any]
    paused: bool
    concurrency_limit: int | None
    work_pool_name: str | None
    work_queue_name: str | None
    job_variables: dict[str, Any]
    schedules: list[dict[str, Any]] = field(default_factory=list)
    parameter_openapi_schema: dict[str, Any] = field(default_factory=dict)

    def shared_fields(self) -> dict[str, Any]:
        """The fields Prefect's create_deployment (`dke deploy`) and Runner.add_flow (`dke
        serve`) both take, as those calls want them."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "tags": self.tags,
            "parameters": self.parameters,
            "paused": self.paused,
            "concurrency_limit": self.concurrency_limit,
            "schedules": _schedule_objects(self),
        }

    def comparable(self) -> dict[str, Any]:
        """The fields `dke deploy` owns, in a form equal to what the API reads back."""
        return {
            "description": self.description,
            "tags": sorted(self.tags),
            "version": self.version,
            "parameters": self.parameters,
            "paused": self.paused,
            "concurrency_limit": self.concurrency_limit,
            "work_pool_name": self.work_pool_name,
            "work_queue_name": self.work_queue_name or "default",
            "job_variables": self.job_variables,
            "entrypoint": self.entrypoint,
            "parameter_openapi_schema": self.parameter_openapi_schema,
            "schedules": _in_order([_comparable_schedule(s) for s in self.schedules]),
        }


def _in_order(schedules: list[dict]) -> list[dict]:
    # The API does not keep the file's order: compare as a set.
    return sorted(schedules, key=lambda s: json.dumps(s, sort_keys=True, default=str))


def _comparable_schedule(s: dict) -> dict:
    inner = dict(s["schedule"])
    if "interval" in inner:
        inner["interval"] = float(inner["interval"])
        inner.pop("anchor_date", None)  # the API fills it in when not given: not ours to compare
    return {
        "schedule": inner,
        "active": s.get("active", True),
        "slug": s.get("slug"),
        "parameters": s.get("parameters") or {},
    }


def deployment_spec(
    loaded, objects: list[dict] | None, flow_name: str, pool: str | None, parameter_schema: dict | None = None
) -> DeploymentSpec:
    """The deployment of a valid environment. ``objects``: its compiled objects (None: no work
    pool, as `dke serve`, whose runs execute here)."""
    env = loaded.env
    dep = deployment_of(env)
    job_variables: dict[str, Any] = {}
    if objects is not None:
        manifest = job_manifest(objects)
        job_variables = {
            MANIFEST_VARIABLE: manifest,
            "namespace": manifest["metadata"]["namespace"],
            **copy.deepcopy(dep.work_pool.job_variables),
        }
    return DeploymentSpec(
        name=dep.name or env.name,
        flow_name=flow_name,
        entrypoint=env.flow.entrypoint,
        description=dep.description,
        tags=list(dep.tags),
        version=dep.version,
        parameters={**env.flow.parameters, **dep.parameters},
        paused=dep.paused,
        concurrency_limit=dep.concurrency_limit,
        work_pool_name=pool if objects is not None else None,
        work_queue_name=dep.work_pool.work_queue_name if objects is not None else None,
        job_variables=job_variables,
        schedules=[schedule_json(s) for s in dep.schedules],
        parameter_openapi_schema=parameter_schema or {},
    )


def flow_name_and_schema(entrypoint: str, base_dir) -> tuple[str, dict]:
    """The flow's name and its parameters' schema, read from the flow file the way `prefect deploy`
    does (its source parsed, not imported: the flow's own dependencies need not be installed here)."""

    target, _, func = entrypoint.rpartition(":")
    resolved = str((Path(base_dir) / target).resolve()) + f":{func}" if target.endswith(".py") else entrypoint
    prepare_import_path(entrypoint, base_dir)
    try:
        from prefect.flows import load_flow_arguments_from_entrypoint
        from prefect.utilities.callables import parameter_schema_from_entrypoint

        schema = parameter_schema_from_entrypoint(resolved).model_dump_for_openapi()
        name = load_flow_arguments_from_entrypoint(resolved, {"name"}).get("name")
    except FileNotFoundError:
        raise DkeError(
            f"flow file for {entrypoint!r} not found (relative to the environment file)", exitcodes.INVALID
        ) from None
    except (ValueError, AttributeError, SyntaxError, ImportError) as e:
        raise DkeError(f"flow.entrypoint {entrypoint!r}: {e}", exitcodes.INVALID) from None
    return name or func.replace("_", "-"), schema


# ---------------------------------------------------------------------------
# against the Prefect API (I/O)


@dataclass
class Change:
    what: str  # "work pool dke", "deployment etl/nightly"
    action: str  # created | configured | unchanged
    diff: str = ""

    def text(self) -> str:
        return f"{self.what} {self.action}"


def _diff(before: Any, after: Any, name: str) -> str:

    a = json.dumps(before, indent=2, sort_keys=True, default=str).splitlines(keepends=True) if before else []
    b = json.dumps(after, indent=2, sort_keys=True, default=str).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=f"prefect/{name}", tofile=f"dke/{name}"))


def ensure_pool(client, name: str, manifest: dict, dry_run: bool = False) -> Change:
    """Create the pool (type kubernetes, dke's template) if missing; update a dke pool whose template
    differs; refuse a pool whose template dke did not write (its runs would not run dke)."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    template = base_job_template(manifest)
    what = f"work pool {name}"
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        pool = None
    if pool is None:
        if not dry_run:
            client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template))
        return Change(what, "created", _diff(None, template, f"workpool/{name}"))
    if not is_dke_template(pool.base_job_template):
        raise DkeError(
            f"{what} exists (type {pool.type}) with a base job template dke did not write: its "
            "runs would not run in this environment; pass another --pool (dke creates it), or set "
            "deployment.work_pool.name",
            exitcodes.CLUSTER,
        )
    # The manifest default belongs to whoever made the pool: each deployment brings its own.
    current = copy.deepcopy(pool.base_job_template)
    wanted = copy.deepcopy(template)
    for t in (current, wanted):
        t["variables"]["properties"][MANIFEST_VARIABLE].pop("default", None)
        t["variables"]["properties"]["namespace"].pop("default", None)
    if current == wanted:
        return Change(what, "unchanged")
    if not dry_run:
        keep = pool.base_job_template["variables"]["properties"]
        for key in (MANIFEST_VARIABLE, "namespace"):
            if "default" in keep[key]:
                template["variables"]["properties"][key]["default"] = keep[key]["default"]
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return Change(what, "configured", _diff(current, wanted, f"workpool/{name}"))


def read_deployment(client, flow_name: str, name: str) -> tuple[Any, list]:
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(f"{flow_name}/{name}")
    except ObjectNotFound:
        return None, []
    return deployment, list(deployment.schedules or [])


def live_comparable(deployment, schedules) -> dict[str, Any]:
    def schedule(s) -> dict:
        inner = s.schedule.model_dump(mode="json", exclude_none=True)
        if "interval" in inner:
            inner["interval"] = float(s.schedule.interval.total_seconds())
            inner.pop("anchor_date", None)
        return {"schedule": inner, "active": s.active, "slug": s.slug, "parameters": s.parameters or {}}

    return {
        "description": deployment.description,
        "tags": sorted(deployment.tags or []),
        "version": deployment.version,
        "parameters": deployment.parameters or {},
        "paused": bool(deployment.paused),
        "concurrency_limit": _limit(deployment),
        "work_pool_name": deployment.work_pool_name,
        "work_queue_name": deployment.work_queue_name,
        "job_variables": deployment.job_variables or {},
        "entrypoint": deployment.entrypoint,
        "parameter_openapi_schema": deployment.parameter_openapi_schema or {},
        "schedules": _in_order([schedule(s) for s in schedules]),
    }


def _limit(deployment) -> int | None:
    # The API keeps a deployment's limit as a global concurrency limit (concurrency_limit is deprecated).
    gcl = getattr(deployment, "global_concurrency_limit", None)
    return gcl.limit if gcl is not None else None


def _schedule_objects(spec: DeploymentSpec) -> list:
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    return [
        DeploymentScheduleCreate.model_validate(
            {
                **s,
                "schedule": {
                    **s["schedule"],
                    **(
                        {"interval": datetime.timedelta(seconds=s["schedule"]["interval"])}
                        if "interval" in s["schedule"]
                        else {}
                    ),
                },
            }
        )
        for s in spec.schedules
    ]


def ensure_deployment(client, spec: DeploymentSpec, dry_run: bool = False) -> tuple[Change, Any]:
    """Create or update the deployment; unchanged when the API already holds exactly this.

    An update is Prefect's upsert (POST /deployments/), which also deletes the deployment's
    scheduled runs and makes new ones: so it is only sent when something changed.
    """
    what = f"deployment {spec.flow_name}/{spec.name}"
    live, schedules = read_deployment(client, spec.flow_name, spec.name)
    wanted = spec.comparable()
    before = live_comparable(live, schedules) if live is not None else None
    if before == wanted:
        return Change(what, "unchanged"), live.id
    action = "created" if live is None else "configured"
    diff = _diff(before, wanted, f"deployment/{spec.flow_name}/{spec.name}")
    if dry_run:
        return Change(what, action, diff), None
    flow_id = client.create_flow_from_name(spec.flow_name)
    deployment_id = client.create_deployment(
        flow_id=flow_id,
        **spec.shared_fields(),
        work_pool_name=spec.work_pool_name,
        work_queue_name=spec.work_queue_name,
        job_variables=spec.job_variables,
        entrypoint=spec.entrypoint,
        path=".",
        parameter_openapi_schema=spec.parameter_openapi_schema,
        enforce_parameter_schema=True,
    )
    return Change(what, action, diff), deployment_id


def prefect_error(e: Exception) -> str:
    """One line for an error from the Prefect API (never its whole response)."""
    status = getattr(getattr(e, "response", None), "status_code", None)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{type(e).__name__}{f' {status}' if status else ''}: {text}"


def flow_run_states(flow_run_ids: list[str]) -> dict[str, str]:
    """State names of these flow runs from the Prefect API ({} when it does not answer)."""
    if not flow_run_ids:
        return {}
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            response = client.request(
                "POST", "/flow_runs/filter", json={"flow_runs": {"id": {"any_": flow_run_ids}}, "limit": 200}
            )
            response.raise_for_status()
            return {r["id"]: ((r.get("state") or {}).get("name") or "?") for r in response.json()}
    except Exception:  # noqa: BLE001 - status works without Prefect; the column says "-"
        return {}


def end_flow_run_processes(grace: float = 10.0) -> None:
    """Let the flow-run processes Prefect's Runner started here (multiprocessing children of
    this process) end before the Dask cluster they use closes: a run that has just finished is
    still closing its Dask client and flushing its logs. One still running after `grace`
    seconds gets SIGTERM (Prefect's engine ends it as an interrupted run), then SIGKILL.
    Dask's own worker processes are the cluster's to stop."""
    import multiprocessing
    import time

    runs = [p for p in multiprocessing.active_children() if not p.name.startswith("Dask")]
    for stop in (None, "terminate", "kill"):
        deadline = time.monotonic() + grace
        for process in runs:
            if stop is not None and process.is_alive():
                getattr(process, stop)()
            process.join(max(0.0, deadline - time.monotonic()))
        runs = [p for p in runs if p.is_alive()]
        if not runs:
            return
