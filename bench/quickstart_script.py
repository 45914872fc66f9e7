"""The hand-written equivalent of `dke run examples/quickstart/environment.yaml`.

What a flow author would write without dke: Prefect + DaskTaskRunner over a LocalCluster
of process workers with the same adapt bounds, per-worker limits and env, the same
parameters, against the Prefect API in PREFECT_API_URL (bench/run_vs_script.py sets it).
"""

import sys
from pathlib import Path

from distributed import LocalCluster
from prefect_dask import DaskTaskRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "flows"))
from quickstart import quickstart  # noqa: E402

if __name__ == "__main__":
    runner = DaskTaskRunner(
        cluster_class=LocalCluster,
        cluster_kwargs={
            "n_workers": 1,
            "processes": True,
            "threads_per_worker": 1,
            "memory_limit": 2**30,
            "dashboard_address": ":0",
            "env": {"GREETING": "hello from the environment"},
        },
        adapt_kwargs={"minimum": 1, "maximum": 4},
    )
    state = quickstart.with_options(task_runner=runner)(n=32, seconds=0.5, return_state=True)
    sys.exit(0 if state.is_completed() else 1)
