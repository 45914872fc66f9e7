"""dke: one environment.yaml, one Prefect flow on an ephemeral, autoscaling Dask cluster."""

__version__ = "0.1.0"
