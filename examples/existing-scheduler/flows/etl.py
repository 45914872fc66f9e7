"""The seed's Dask-executor example, in Prefect 3: two tasks on an existing Dask cluster."""

from prefect import flow, task


@task
def get_value(n: int) -> str:
    return f"Example! ({n})"


@task
def output_value(value: str) -> str:
    print(value)
    return value


@flow(log_prints=True)
def etl(n: int = 100) -> str:
    return output_value(get_value(n))


if __name__ == "__main__":
    etl()
