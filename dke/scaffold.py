"""`dke init`: the files a new project starts from. Pure: returns {relative path: text}."""

from __future__ import annotations

import re

from dke.model import NAME_MAX, SCHEMA_ID


def environment_name(folder_name: str) -> str:
    """A DNS-1123 label from a folder name ("My ETL_flow" -> "my-etl-flow")."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder_name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:NAME_MAX].strip("-")
    return name or "my-flow"


def scaffold(name: str) -> dict[str, str]:
    return {
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
# run the flow image: leave `image` out and dke fills it in.
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
