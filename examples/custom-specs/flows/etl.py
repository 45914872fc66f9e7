"""Sum a week of (simulated) daily partitions on the Dask workers."""

from prefect import flow, task


@task
def load_partition(day: int) -> list[int]:
    return [day * 1000 + i for i in range(1000)]


@task
def total(rows: list[int]) -> int:
    return sum(rows)


@flow(log_prints=True)
def etl(days: int = 7) -> int:
    partitions = load_partition.map(range(days))
    result = sum(t.result() for t in total.map(partitions))
    print(f"{days} partitions, total {result}")
    return result


if __name__ == "__main__":
    etl()
