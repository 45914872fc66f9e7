"""The Dask operator as the stand-in runs it: `kopf run tests/support/standin_operator.py --all-namespaces`.

This is dask-kubernetes' own kopf controller (dask_kubernetes.operator.controller, the module the
operator image runs), unchanged but for one upstream fix not yet in the installed release 2026.3.0:

dask/dask-kubernetes#968 "DaskCluster stuck in Pending state - possible race condition", fixed by
PR #977: `daskcluster_create_components` ends by writing phase `Pending`, while
`handle_scheduler_service_status` writes `Running` as soon as the scheduler Service exists. When the
Service's handler wins (on the stand-in, whose API answers in microseconds on a busy 2-core machine,
it often does), `Pending` overwrites `Running`, the cluster never leaves Pending and
KubeCluster waits for it until its resource timeout. As #977 does, the Service handler leaves a
cluster that is still `Created` alone and the components handler sets the final phase itself.
"""

from __future__ import annotations

from typing import Any

import dask_kubernetes.operator.controller.controller as controller
from dask_kubernetes.operator._objects import DaskCluster
from kopf._core.intents import registries

_original_service_status = controller.handle_scheduler_service_status
_original_create_components = controller.daskcluster_create_components


def _phase(service_spec: dict, status: dict | None) -> str:
    if service_spec.get("type") == "LoadBalancer" and not ((status or {}).get("loadBalancer") or {}).get(
        "ingress"
    ):
        return "Pending"
    return "Running"


async def handle_scheduler_service_status(
    spec: Any, labels: Any, status: Any, namespace: str | None, **kwargs: Any
) -> None:
    cluster = await DaskCluster.get(labels["dask.org/cluster-name"], namespace=namespace)
    if (cluster.raw.get("status") or {}).get("phase") == "Created":
        return  # the components handler sets the phase once everything exists (#977)
    await cluster.patch({"status": {"phase": _phase(dict(spec), dict(status or {}))}})


async def daskcluster_create_components(**kwargs: Any) -> None:
    await _original_create_components(**kwargs)
    service = dict((kwargs["spec"].get("scheduler") or {}).get("service") or {})
    kwargs["patch"].status["phase"] = _phase(service, None)


_REPLACEMENTS = {
    _original_service_status: handle_scheduler_service_status,
    _original_create_components: daskcluster_create_components,
}

_replaced = 0
for _handler in registries.get_default_registry()._changing.get_all_handlers():
    if _handler.fn in _REPLACEMENTS:
        object.__setattr__(_handler, "fn", _REPLACEMENTS[_handler.fn])
        _replaced += 1
assert _replaced == len(_REPLACEMENTS), (
    "dask-kubernetes' handlers changed: revisit tests/support/standin_operator.py"
)
