"""`dke init`: the files a new project starts from, as {relative path: text} (nothing is written).

The flow image's Dockerfile comes from one template (`dockerfile`) for `dke init` and for
every example (tests/test_flow_image.py checks they are what it renders), so they cannot drift.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from importlib import metadata

from dke import __version__
from dke.environment.model import NAME_MAX, SCHEMA_ID


def environment_name(folder_name: str) -> str:
    """A DNS-1035 label from a folder name ("My ETL_flow" -> "my-etl-flow", "2024 report" -> "flow-2024-report")."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder_name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if name and not name[0].isalpha():
        name = "flow-" + name  # the scheduler's Service name, derived from it, starts with a letter
    return name[:NAME_MAX].strip("-") or "my-flow"


# What the flow image pins, besides dke[kube] itself: the runtime of every pod of a run.
IMAGE_PACKAGES = ("prefect", "prefect-dask", "distributed", "dask-kubernetes")
# The image's user: numeric, so that Kubernetes' runAsNonRoot can verify it.
IMAGE_UID = 10001
# Where the flow code goes: relative entrypoints (flows/etl.py:etl) resolve against the runner's
# working directory (dke.runners.incluster.FLOW_DIR_ENV overrides it).
IMAGE_WORKDIR = "/opt/flow"


def image_versions() -> dict[str, str]:
    """The versions this CLI runs with: Python, dke, and those of IMAGE_PACKAGES installed here
    (a package not installed is left to dke[kube]'s requirements)."""

    versions = {"python": "{}.{}.{}".format(*sys.version_info[:3]), "dke": __version__}
    for package in IMAGE_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


# dke's own release, by URL: the name `dke` on PyPI belongs to an unrelated package, so a
# `dke==X` pin could install someone else's code into every pod.
DKE_SOURCE = "https://github.com/dke-dev/dke/archive/refs/tags/v{version}.tar.gz"


def dockerfile(versions: Mapping[str, str]) -> str:
    """The flow image's Dockerfile, pinned to `versions` (see image_versions)."""
    pins = "".join(f' \\\n        "{p}=={versions[p]}"' for p in IMAGE_PACKAGES if p in versions)
    return f"""\
# The flow image: every pod of a run starts from it (docs/flow-image.md).
#   runner (the Job):  dke incluster         scheduler:  dask scheduler
#   workers:           dask worker, running the flow's Prefect tasks
# Pinned to the versions of the dke CLI that scaffolded it: keep them equal to those of
# the CLI that renders and runs the environment (`dke incluster` warns when they differ).
# Build, push, and put the pushed tag (or its @sha256 digest) in environment.yaml's image:
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE --push .
#   docker run --rm IMAGE dke --version
FROM python:{versions["python"]}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The flow's own dependencies go here too, pinned (e.g. "pandas==2.2.3").
RUN pip install --no-cache-dir \\
        "dke[kube] @ {DKE_SOURCE.format(version=versions["dke"])}"{pins} \\
    && useradd --create-home --uid {IMAGE_UID} --user-group flow

# Relative flow entrypoints (flows/etl.py:etl) resolve against the working directory.
WORKDIR {IMAGE_WORKDIR}
COPY . .

USER {IMAGE_UID}
"""


DOCKERIGNORE = """\
# Keep the build context small, and secrets and local state out of the image.
.git
.venv
venv
**/__pycache__
**/*.py[co]
.pytest_cache
.prefect
.env
.env.*
*.pem
*.key
.dockerconfigjson
"""


def scaffold(name: str, versions: Mapping[str, str] | None = None) -> dict[str, str]:
    """The project's files; the Dockerfile pins `versions` (default: this CLI's, image_versions())."""
    return {
        "Dockerfile": dockerfile(versions or image_versions()),
        ".dockerignore": DOCKERIGNORE,
        "environment.yaml": f"""\
# yaml-language-server: $schema={SCHEMA_ID}
# A Prefect flow on an ephemeral, autoscaling Dask cluster.
#   dke lint environment.yaml     check it (also in pre-commit and in your editor)
#   dke run environment.yaml      run it here, on a local Dask cluster
#   dke apply environment.yaml    run it on Kubernetes (needs the Dask operator)
name: {name}
image: ghcr.io/your-org/{name}:0.1.0   # the flow image: every pod runs it
flow:
  entrypoint: flows/flow.py:main
  parameters:
    n: 20
min_workers: 1
max_workers: 2
worker_spec_file: specs/worker.yaml
env:
  LOG_LEVEL: info
# The runner pod (the flow's own process on Kubernetes): its resources and placement.
# job:
#   resources:
#     requests: {{cpu: 500m, memory: 1Gi}}
#   node_selector: {{kubernetes.io/arch: amd64}}
# Images that sidecars and init containers of the spec files may run (e.g. a proxy):
# extra_images:
#   - gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0
""",
        "flows/flow.py": '''\
"""A starting flow: independent tasks fan out over the Dask workers."""

from prefect import flow, task


@task
def square(x: int) -> int:
    return x * x


@flow(log_prints=True)
def main(n: int = 20) -> int:
    futures = square.map(range(n))
    total = sum(f.result() for f in futures)
    print(f"sum of squares below {n}: {total}")
    return total


if __name__ == "__main__":
    main()
''',
        "specs/worker.yaml": """\
# Merged over dke's default worker pod (containers are matched by name; dke's
# worker container is called "worker"). Custom values win. Every container must
# run the flow image (leave `image` out and dke fills it in), except sidecars and
# init containers whose image environment.yaml lists under `extra_images`.
# `dke run` maps these limits to threads and memory per local worker.
containers:
  - name: worker
    resources:
      requests: {cpu: "1", memory: 1Gi}
      limits: {cpu: "1", memory: 1Gi}
# nodeSelector:
#   kubernetes.io/arch: amd64
# tolerations:
#   - {key: dedicated, operator: Equal, value: dask, effect: NoSchedule}
""",
    }
