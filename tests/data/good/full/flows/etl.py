from prefect import flow


@flow
def etl(n: int = 10, date: str = "", tables: list[str] | None = None) -> int:
    return n
