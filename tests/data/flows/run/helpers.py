"""Imported by module entrypoint tests (`helpers:hello`)."""

from prefect import flow


def not_a_flow():
    return 1


@flow
def hello(name: str = "world") -> str:
    return f"hello {name}"
