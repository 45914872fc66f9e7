"""A small report computed on the Dask workers (the image comes from a private registry)."""

from prefect import flow, task


@task
def count_words(line: str) -> int:
    return len(line.split())


@flow(log_prints=True)
def report(lines: list[str] | None = None) -> int:
    lines = lines or ["the quick brown fox", "jumps over", "the lazy dog"]
    words = sum(f.result() for f in count_words.map(lines))
    print(f"{len(lines)} lines, {words} words")
    return words


if __name__ == "__main__":
    report()
