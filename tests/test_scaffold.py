import pytest

from dke.pipeline import load_environment
from dke.scaffold import environment_name, scaffold


@pytest.mark.parametrize(
    "folder, expected",
    [("my-etl", "my-etl"), ("My_ETL flow", "my-etl-flow"), ("--x--", "x"), ("ü", "my-flow"), ("a" * 80, "a" * 40)],
)
def test_environment_name_is_a_dns_label(folder, expected):
    assert environment_name(folder) == expected


def test_scaffolded_environment_is_clean(tmp_path):
    for rel, text in scaffold("demo").items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(strict=True), loaded.diagnostics
    assert loaded.env.name == "demo"
    assert loaded.worker is not None and loaded.worker.spec["containers"][0]["name"] == "worker"
