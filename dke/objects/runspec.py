"""What a run's Job carries to the in-cluster runner: the contract between
`dke.objects.compile` (producer, at render/apply time) and `dke.runners.incluster` (consumer, in the pod).

The Job's runner container gets it as JSON in the environment variable
``DKE_RUN_SPEC``, next to downward-API variables that identify the Job, so that
nothing but the Job has to exist for a run to start, and nothing outlives it.

The CLI that compiles the spec and the dke inside the flow image may differ (the image
was built months ago, the CLI was upgraded yesterday). So the spec carries its format
(`RUN_SPEC_FORMAT`) and the versions of dke, Prefect and distributed that compiled it:
`read_spec` refuses a format this dke cannot read with one line naming both versions
(never a validation traceback), and `version_skew` names the package versions that differ.
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dke import __version__
from dke.environment.model import Flow

RUN_SPEC_ENV = "DKE_RUN_SPEC"
# Filled by the downward API in the Job's pod template (see dke.objects.compile).
JOB_NAME_ENV = "DKE_JOB_NAME"  # metadata.labels['batch.kubernetes.io/job-name']
JOB_UID_ENV = "DKE_JOB_UID"  # metadata.labels['batch.kubernetes.io/controller-uid']
NAMESPACE_ENV = "DKE_NAMESPACE"  # metadata.namespace
POD_NAME_ENV = "DKE_POD_NAME"  # metadata.name
POD_IP_ENV = "DKE_POD_IP"  # status.podIP (workers reach a runner-local Prefect server here)

# Bump on every change a reader of the previous format would reject or misread (a new
# field included: RunSpec forbids unknown fields). A spec without "format" predates it.
RUN_SPEC_FORMAT = 1
# The packages whose versions the spec records: the image must hold the same ones.
VERSIONED = ("dke", "prefect", "distributed")


@cache
def installed_version(package: str) -> str | None:
    """The installed version of `package`, None when it is not installed.

    Reads the wheel's `NAME-VERSION.dist-info` folder name off sys.path rather than
    importing importlib.metadata (~17 ms): compile, and so lint and render, stay light.
    """
    if package == "dke":
        return __version__
    wanted = re.sub(r"[-_.]+", "_", package).lower()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist, _, version = name[: -len(".dist-info")].partition("-")
                if re.sub(r"[-_.]+", "_", dist).lower() == wanted and version:
                    return version
    from importlib import metadata  # ~17 ms: only on this slow path

    try:  # egg-info, eggs, zips: the slow, general way
        return metadata.version(package)
    except Exception:  # noqa: BLE001 - not installed, or unreadable metadata: unknown
        return None


def compiler_versions() -> dict[str, str]:
    """dke, Prefect and distributed as installed here (a package not installed is left out)."""
    return {p: v for p in VERSIONED if (v := installed_version(p))}


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    format: int = Field(RUN_SPEC_FORMAT, description="The run spec's format (RUN_SPEC_FORMAT).")
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
    versions: dict[str, str] = Field(
        default_factory=compiler_versions,
        description="dke, prefect, distributed of the CLI that compiled it.",
    )

    def to_env_value(self) -> str:
        # Plain json rather than model_dump_json, which would first build pydantic's
        # serializer: compile (and so lint and render) stays free of that cost.
        data: dict[str, Any] = {name: getattr(self, name) for name in type(self).model_fields}
        data["flow"] = {"entrypoint": self.flow.entrypoint, "parameters": self.flow.parameters}
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_env_value(cls, value: str) -> RunSpec:
        """The spec in `value`; RunSpecError (one line) when this dke cannot read it."""
        return read_spec(value)


class RunSpecError(ValueError):
    """The run spec cannot be read by this dke: the message is one line for the user."""


class RunSpecFormatError(RunSpecError):
    """The run spec is in a format this dke does not read (version skew)."""


def read_spec(value: str) -> RunSpec:
    """Parse DKE_RUN_SPEC: its format is checked before its fields, so that a spec from
    another dke is reported as version skew, not as a list of validation errors."""
    try:
        data = json.loads(value)
    except ValueError as e:
        raise RunSpecError(f"{RUN_SPEC_ENV} is not a valid run spec: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise RunSpecError(
            f"{RUN_SPEC_ENV} is not a valid run spec: expected a JSON object, got {type(data).__name__}"
        )
    versions = data.get("versions")
    written_by = versions.get("dke") if isinstance(versions, dict) else None
    written_by = written_by if isinstance(written_by, str) else None
    mine = installed_version("dke")
    # No "format": a spec from before specs had one; its fields are this format's (the new
    # ones have defaults), so the fields decide.
    fmt = data.get("format", RUN_SPEC_FORMAT)
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise RunSpecError(
            f"{RUN_SPEC_ENV} is not a valid run spec: format: expected an integer, got {fmt!r}"
        )
    if fmt != RUN_SPEC_FORMAT:
        raise RunSpecFormatError(format_skew_message(fmt, written_by))
    try:
        return RunSpec.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '$'}: {err['msg']}"
            for err in e.errors(include_url=False, include_input=False)
        )
        hint = (
            f" (compiled by dke {written_by}, this image has dke {mine}: rebuild the image with "
            f"dke[kube]=={written_by})"
            if written_by and written_by != mine
            else ""
        )
        raise RunSpecError(f"{RUN_SPEC_ENV} is not a valid run spec: {problems}{hint}") from None


def format_skew_message(fmt: int, written_by: str | None) -> str:
    mine = installed_version("dke")
    compiled = (
        f"dke {written_by}" if written_by else "an older dke" if fmt < RUN_SPEC_FORMAT else "a newer dke"
    )
    if fmt < RUN_SPEC_FORMAT:
        fix = (
            f"render and apply with dke {mine} (pip install 'dke[kube]=={mine}'), or rebuild the flow "
            f"image with the dke that compiled it" + (f" (dke[kube]=={written_by})" if written_by else "")
        )
    else:
        fix = (
            "rebuild the flow image with "
            + (f"dke[kube]=={written_by}" if written_by else "that dke")
            + f", or render and apply with dke {mine}"
        )
    return (
        f"{RUN_SPEC_ENV} was compiled by {compiled} (run spec format {fmt}); this image's dke {mine} "
        f"reads format {RUN_SPEC_FORMAT}: {fix}"
    )


def version_skew(spec: RunSpec) -> list[str]:
    """One line per package whose version differs between the CLI that compiled the spec
    and this process (the runner; the scheduler and workers run the same image)."""
    lines = []
    for package in VERSIONED:
        compiled = spec.versions.get(package)
        here = installed_version(package)
        if compiled and compiled != here:
            pin = f"dke[kube]=={compiled}" if package == "dke" else f"{package}=={compiled}"
            lines.append(
                f"version mismatch: {package} {compiled} compiled this run, the flow image has "
                f"{here or 'none'} (runner, scheduler and workers run the image's); rebuild the "
                f"image with {pin} to run what `dke run` ran (see docs/flow-image.md)"
            )
    return lines
