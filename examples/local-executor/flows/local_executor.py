"""The seed's "Local Executor Remote Example" in Prefect 3: get_value feeds output_value."""

from prefect import flow, task


@task
def get_value() -> str:
    return "Example!"


@task
def output_value(value: str) -> str:
    print(value)
    return value


@flow(name="Local Executor Remote Example", log_prints=True)
def local_executor_example() -> str:
    return output_value(get_value())


if __name__ == "__main__":
    local_executor_example()
