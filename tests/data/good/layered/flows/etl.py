from prefect import flow


@flow
def etl(n: int = 10) -> int:
    return n
