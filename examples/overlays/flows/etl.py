"""Count records per source prefix; the source differs between dev and prod (see prod.yaml)."""

from prefect import flow, task, unmapped


@task
def count(prefix: str, shard: int) -> int:
    return len(prefix) * (shard + 1)


@flow(log_prints=True)
def etl(source: str = "s3://acme-dev/raw", shards: int = 8) -> int:
    result = sum(f.result() for f in count.map(unmapped(source), range(shards)))
    print(f"{source}: {result} records in {shards} shards")
    return result


if __name__ == "__main__":
    etl()
