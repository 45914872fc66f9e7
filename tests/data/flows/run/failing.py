from prefect import flow, task


@task
def explode(x: int) -> int:
    raise ValueError(f"boom {x}")


@flow
def failing() -> int:
    return explode.submit(7).result()
