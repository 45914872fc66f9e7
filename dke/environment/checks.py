"""Semantic checks the schema cannot express, each a positioned diagnostic."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from dke import contracts
from dke.diagnostics import WARNING, Diagnostic
from dke.environment import model, podtemplate
from dke.environment.kubeschema import is_quantity, quantity_fields
from dke.environment.merge import Merged
from dke.environment.model import Environment
from dke.environment.specs import PodSpecFile

IMAGE_MISMATCH = "DKE300"
IMAGE_UNPINNED = "DKE301"
WORKER_BOUNDS = "DKE302"
CONFLICT = "DKE305"
IGNORED = "DKE306"
EXTRA_IMAGE_UNUSED = "DKE308"
RESERVED_LABEL = "DKE309"
SECRET_IN_ENV = "DKE307"
OPERATOR_ENV = "DKE212"  # as dke.environment.podtemplate.DASK_ENV
BAD_QUANTITY = "DKE202"
# A spec file's pod metadata becomes the DaskCluster's: its problems share the code of the
# compiled objects' (dke.objects.verify), which reports them with those.
OBJECT_INVALID = "DKE400"


def image_is_unpinned(image: str) -> bool:
    """True for `repo` and `repo:latest`; a digest or another tag is pinned."""
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.rsplit(":", 1)[1] == "latest"


def looks_secret(name: str) -> bool:
    """`*_PASSWORD`, `*_TOKEN`, `*_KEY`, `*SECRET*` (and the same without the underscore)."""
    upper = name.upper()
    return upper.endswith(("PASSWORD", "PASSWD", "TOKEN", "_KEY", "APIKEY")) or "SECRET" in upper


# Keys the objects are found by: a user's value would misdirect status/logs/delete or the operator.
RESERVED_LABELS = frozenset(
    {
        contracts.MANAGED_BY,
        contracts.APP_NAME,
        contracts.COMPONENT,
        contracts.ENVIRONMENT_LABEL,
        contracts.RUN_ID_LABEL,
        contracts.DASK_CLUSTER_NAME_LABEL,
        contracts.DASK_COMPONENT_LABEL,
        contracts.FLOW_RUN_LABEL,
        *contracts.JOB_NAME_LABELS,
    }
)


def check_environment(env: Environment, merged: Merged, base_dir: Path) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if env.min_workers > env.max_workers:
        out.append(
            merged.diagnostic(
                ("min_workers",) if "min_workers" in merged.data else ("max_workers",),
                WORKER_BOUNDS,
                f"min_workers ({env.min_workers}) is greater than max_workers ({env.max_workers}); "
                "set min_workers <= max_workers (equal means a fixed-size cluster)",
            )
        )
    for key in env.labels:
        if key in RESERVED_LABELS or key.startswith("dke.dev/"):
            out.append(
                merged.diagnostic(
                    ("labels", key),
                    RESERVED_LABEL,
                    f"label {key!r} is one dke, the Dask operator or Kubernetes sets, and selects objects "
                    "by (status, logs, delete, the operator's pods): use a label key of your own",
                    prefer_key=True,
                )
            )
    if image_is_unpinned(env.image):
        out.append(
            merged.diagnostic(
                ("image",),
                IMAGE_UNPINNED,
                f"image {env.image!r} is not pinned (no tag or ':latest'); pin a version tag or digest "
                "so that every pod runs the same code",
                WARNING,
            )
        )
    for name in env.env:
        if name in ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME") and not env.scheduler_address:
            out.append(
                merged.diagnostic(
                    ("env", name),
                    OPERATOR_ENV,
                    f"{name} is set by dke (locally) and by the Dask operator (on Kubernetes) for each worker; "
                    "a fixed value points at a scheduler or name that does not exist: remove it",
                    prefer_key=True,
                )
            )
        elif looks_secret(name):
            out.append(
                merged.diagnostic(
                    ("env", name),
                    SECRET_IN_ENV,
                    f"{name} looks like a secret, and `env:` values are stored in plain text in the Job and pod "
                    "specs; put it in a Kubernetes Secret and list that Secret under `secrets:`",
                    WARNING,
                    prefer_key=True,
                )
            )
    for part in ("requests", "limits"):
        for key, value in getattr(env.job.resources, part).items():
            if not is_quantity(value):
                out.append(
                    merged.diagnostic(
                        ("job", "resources", part, key),
                        BAD_QUANTITY,
                        f"{value!r} is not a Kubernetes quantity; write e.g. '4Gi', '512Mi', '500m' or '2'",
                    )
                )
    if env.scheduler_address and env.executor == "local":
        out.append(
            merged.diagnostic(
                ("executor",),
                CONFLICT,
                "executor 'local' runs tasks in the flow process; remove scheduler_address or use executor 'dask'",
            )
        )
    if env.scheduler_address or env.executor == "local":
        why = "scheduler_address uses an existing cluster" if env.scheduler_address else "executor is 'local'"
        for key in ("min_workers", "max_workers", "scheduler_spec_file", "worker_spec_file"):
            if key in merged.data:
                out.append(
                    merged.diagnostic((key,), IGNORED, f"{key} is ignored: {why}", WARNING, prefer_key=True)
                )
    return out


def check_spec_file(
    spec: PodSpecFile, image: str, extra_images: Sequence[str] = (), role: str | None = None
) -> list[Diagnostic]:
    """Image consistency and resource quantities inside one scheduler/worker spec file.

    Every container runs the flow image, except sidecars and init containers whose image is
    listed in ``extra_images``; the Dask ``role`` container runs the flow image regardless."""
    out: list[Diagnostic] = []
    doc, base = spec.document, spec.spec_path
    pod = spec.spec
    containers = pod.get("containers") if isinstance(pod, dict) else None
    dask = (
        podtemplate.find_container(containers, role).index
        if role is not None and isinstance(containers, list)
        else None
    )
    for group in ("containers", "initContainers"):
        items = pod.get(group) if isinstance(pod, dict) else None
        for i, container in enumerate(items if isinstance(items, list) else []):
            if not isinstance(container, dict) or "image" not in container:
                continue  # no image: the flow image is filled in
            if container["image"] == image:
                continue
            name = container.get("name", f"#{i}")
            is_dask = group == "containers" and i == dask
            if container["image"] in extra_images and not is_dask:
                continue
            if is_dask:
                why = (
                    f"the Dask {role} container runs the flow's code, so it must run the flow image "
                    "(extra_images are for sidecars and init containers): set it to the flow image or remove "
                    "the line to inherit it"
                )
            else:
                why = (
                    "every container must run the flow image: set it to the flow image, remove the line to "
                    "inherit it, or, for a sidecar or init step that needs its own image, list this exact "
                    "image under `extra_images`"
                )
            out.append(
                doc.diagnostic(
                    base + (group, i, "image"),
                    IMAGE_MISMATCH,
                    f"container {name!r} runs {container['image']!r} but the flow image is {image!r}; {why}",
                )
            )
    for path, value in quantity_fields(pod, base):
        if not is_quantity(value):
            out.append(
                doc.diagnostic(
                    path,
                    BAD_QUANTITY,
                    f"{value!r} is not a Kubernetes quantity; write e.g. '4Gi', '512Mi', '500m' or '2'",
                )
            )
    return out


def check_pod_metadata(spec: PodSpecFile) -> list[Diagnostic]:
    """Labels and annotation keys of a spec file's Pod manifest (the API server checks their syntax,
    the JSON schemas do not)."""
    out = []
    for part in ("labels", "annotations"):
        values = spec.metadata.get(part)
        for key, value in values.items() if isinstance(values, dict) else []:
            path = ("metadata", part, key)
            if not re.match(model.LABEL_KEY, str(key)) or len(str(key).rpartition("/")[2]) > 63:
                out.append(
                    spec.document.diagnostic(
                        path,
                        OBJECT_INVALID,
                        f"{part[:-1]} key {key!r} is not a valid Kubernetes key: an optional "
                        "DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'",
                        prefer_key=True,
                    )
                )
            elif part == "labels" and not (isinstance(value, str) and re.match(model.LABEL_VALUE, value)):
                out.append(
                    spec.document.diagnostic(
                        path,
                        OBJECT_INVALID,
                        f"label value {value!r} is not valid: at most 63 letters, digits, "
                        "'-', '_' or '.', starting and ending with a letter or digit",
                    )
                )
    return out


def extra_images_used(spec: PodSpecFile, extra_images: Sequence[str]) -> set[str]:
    """The entries of ``extra_images`` that a container or init container of ``spec`` runs."""
    pod = spec.spec
    used = set()
    for group in ("containers", "initContainers"):
        items = pod.get(group) if isinstance(pod, dict) else None
        for container in items if isinstance(items, list) else []:
            if isinstance(container, dict) and container.get("image") in extra_images:
                used.add(container["image"])
    return used


def check_extra_images(env: Environment, merged: Merged, specs: Sequence[PodSpecFile]) -> list[Diagnostic]:
    """An `extra_images` entry that no container runs: a leftover, or a typo of the image it meant."""
    used: set[str] = set()
    for spec in specs:
        used |= extra_images_used(spec, env.extra_images)
    return [
        merged.diagnostic(
            ("extra_images", i),
            EXTRA_IMAGE_UNUSED,
            f"extra image {image!r} is run by no container of the scheduler or worker spec files; "
            "remove it, or write it exactly as the container's `image` does",
            WARNING,
        )
        for i, image in enumerate(env.extra_images)
        if image not in used
    ]
