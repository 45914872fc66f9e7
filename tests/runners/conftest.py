"""Fixtures of the Kubernetes runner tests: kmock's emulator over real HTTP (see tests/README.md
for its gaps), with the Dask operator's CRDs, and a client connected to it in namespace `data`."""

import pytest
from kube_emulator import served_emulator
from kube_testing import FAST

from dke.runners import kubeclient


@pytest.fixture
def emulator():
    with served_emulator() as served:
        served.emulator.install_dask_operator()
        yield served


@pytest.fixture
def api(emulator, tmp_path):
    config = emulator.kubeconfig(tmp_path / "kubeconfig")
    with kubeclient.connect(kubeclient.Target(kubeconfig=config, namespace="data"), retry=FAST) as connected:
        yield connected
