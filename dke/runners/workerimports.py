"""What every local Dask worker needs before its first Prefect task, imported once.

`dke run`'s workers are forked from one process that has imported this module (Dask's
"forkserver" start method, see dke.runners.local.worker_processes): each new worker starts
with Prefect already imported instead of importing it again (~1.5 s of CPU each), and the
adaptive cluster's later workers join in a fraction of a second.

Loading Prefect's collections is part of it: the first task a worker runs hydrates a result
store, whose block lookup imports every installed Prefect integration (prefect-kubernetes
brings the Kubernetes client and kopf): as much again as importing Prefect itself.
Prefect reads its settings when imported: here from the fork server's environment, which is
the run's (the server starts with the cluster's first worker, after dke has exported the
environment's `env` and the API's URL); a task runs in the settings the flow sends it anyway.
"""

import contextlib
import gc

with contextlib.suppress(Exception):  # a worker imports what fails here by itself, and says why
    import prefect.task_engine  # noqa: F401
    import prefect_dask  # noqa: F401
    from prefect.plugins import load_prefect_collections

    load_prefect_collections()

# Forked children share these pages until they write them: keep the collector off them.
gc.freeze()
