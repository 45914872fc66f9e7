import pytest

from dke.environment.pipeline import load_environment
from dke.environment.scaffold import environment_name, scaffold


@pytest.mark.parametrize(
    "folder, expected",
    [
        ("my-etl", "my-etl"),
        ("My_ETL flow", "my-etl-flow"),
        ("--x--", "x"),
        ("ü", "my-flow"),
        ("a" * 80, "a" * 40),
        ("2024 report", "flow-2024-report"),
        ("9" * 80, "flow-" + "9" * 35),
    ],
)
def test_environment_name_is_a_dns_label(folder, expected):
    import re

    from dke.environment.model import DNS_1035_LABEL

    assert environment_name(folder) == expected
    assert re.match(DNS_1035_LABEL, expected)


def test_scaffolded_environment_is_clean(tmp_path):
    for rel, text in scaffold("demo").items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(strict=True), loaded.diagnostics
    assert loaded.env.name == "demo"
    assert loaded.worker is not None and loaded.worker.spec["containers"][0]["name"] == "worker"


def test_the_dockerfile_pins_the_given_versions_and_leaves_missing_packages_to_dke_kube():
    versions = {"python": "3.12.4", "dke": "0.9.0", "prefect": "3.1.0", "distributed": "2025.1.0"}
    text = scaffold("demo", versions)["Dockerfile"]
    assert "FROM python:3.12.4-slim\n" in text
    assert (
        '"dke[kube] @ https://github.com/dke-dev/dke/archive/refs/tags/v0.9.0.tar.gz"' in text
        and '"prefect==3.1.0"' in text
        and '"distributed==2025.1.0"' in text
    )
    # Not installed where init ran (a CLI without the kube extra): dke[kube] brings them in.
    assert (
        "prefect-dask" not in text.split("FROM", 1)[1] and "dask-kubernetes" not in text.split("FROM", 1)[1]
    )


def test_image_versions_are_this_cli_s():
    import sys
    from importlib import metadata

    from dke import __version__
    from dke.environment.scaffold import IMAGE_PACKAGES, image_versions

    assert image_versions() == {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "dke": __version__,
        **{p: metadata.version(p) for p in IMAGE_PACKAGES},
    }


def test_the_commented_runner_and_extra_images_examples_work_once_uncommented(tmp_path):
    files = scaffold("demo")
    lines = files["environment.yaml"].splitlines()
    start = lines.index("# job:")
    example = [line[2:] for line in lines[start:] if line.startswith("# ") and not line.startswith("# The ")]
    example = [line for line in example if not line.startswith("Images that")]
    files["environment.yaml"] = "\n".join(lines[:start] + example) + "\n"
    files["specs/worker.yaml"] += (
        "initContainers:\n  - name: proxy\n    image: gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0\n"
    )
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    loaded = load_environment(str(tmp_path / "environment.yaml"))
    assert loaded.ok(strict=True), loaded.diagnostics
    assert loaded.env.job.node_selector == {"kubernetes.io/arch": "amd64"}
    assert loaded.env.extra_images == ["gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"]
