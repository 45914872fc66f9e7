"""Fixtures for the commands that talk to Kubernetes (apply, diff, status, logs, delete, deploy):
an emulated API server with the Dask operator's CRDs, and retries/polling made fast."""

import pytest
from kube_emulator import served_emulator


@pytest.fixture
def fast_kube(monkeypatch):
    from dke.runners import kubeclient

    monkeypatch.setattr(kubeclient, "DEFAULT_RETRY", kubeclient.RetryPolicy(attempts=4, base=0.01, cap=0.05))
    monkeypatch.setenv("DKE_POLL_INTERVAL", "0.05")


@pytest.fixture
def cluster(tmp_path, fast_kube):
    with served_emulator() as served:
        served.emulator.install_dask_operator()
        served.config = served.kubeconfig(tmp_path / "kubeconfig", namespace="data")
        yield served
