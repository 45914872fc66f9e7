"""Helpers of the Kubernetes runner tests (tests/runners/test_kube*.py): an environment on disk,
its compiled objects, what the emulator stores, and a full apply."""

from __future__ import annotations

from pathlib import Path

from dke.runners import kubeapply, kubeclient
from dke.runners.credentials import RegistryCredentials

FAST = kubeclient.RetryPolicy(attempts=4, base=0.01, cap=0.05)
CREDS = RegistryCredentials("ghcr.io", "robot", "s3cr3t-Pa55", "robot@acme.io", "test")
ENVIRONMENT = """\
name: etl
image: ghcr.io/acme/etl:0.1.0
flow:
  entrypoint: flows/etl.py:etl
min_workers: {min_workers}
max_workers: {max_workers}
private_registry: {private}
"""


def load(tmp_path: Path, min_workers=1, max_workers=2, private=False, extra=""):
    from dke.environment.pipeline import load_environment

    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "etl.py").write_text(
        "from prefect import flow\n\n\n@flow\ndef etl():\n    return 1\n"
    )
    path = tmp_path / "environment.yaml"
    path.write_text(
        ENVIRONMENT.format(min_workers=min_workers, max_workers=max_workers, private=str(private).lower())
        + extra
    )
    loaded = load_environment(str(path))
    assert loaded.ok(), loaded.diagnostics
    return loaded


def compiled(tmp_path, run_id="r1", namespace="data", **kwargs):
    from dke.objects.compile import compile_environment

    return compile_environment(load(tmp_path, **kwargs), run_id, namespace)


def stored_kinds(emulator, namespace="data"):
    return {
        plural: sorted(o["metadata"]["name"] for o in emulator.emulator.stored(plural, namespace))
        for plural in ("serviceaccounts", "roles", "rolebindings", "jobs", "secrets", "pods", "daskclusters")
    }


def full_apply(api, objects):
    kubeapply.preflight(api, adaptive=True)
    return kubeapply.apply_objects(api, objects)
