from click.testing import CliRunner

from dke.cli import cli


def test_init_creates_a_project_that_lints_clean(tmp_path):
    runner = CliRunner()
    target = tmp_path / "Nightly ETL"
    result = runner.invoke(cli, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "flows" / "flow.py").is_file()
    assert (target / "environment.yaml").read_text().startswith("# yaml-language-server: $schema=")
    assert "name: nightly-etl" in (target / "environment.yaml").read_text()
    # The flow image's build files, from the same template as the examples'.
    assert (target / "Dockerfile").read_text().startswith("# The flow image: every pod of a run")
    assert ".env" in (target / ".dockerignore").read_text().splitlines()
    assert f"created {target / 'Dockerfile'}" in result.output
    lint = runner.invoke(cli, ["lint", "--strict", str(target / "environment.yaml")])
    assert lint.exit_code == 0, lint.output


def test_init_refuses_to_overwrite_without_force(tmp_path):
    runner = CliRunner()
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "flow.py").write_text("mine")
    (tmp_path / "Dockerfile").write_text("FROM mine")
    result = runner.invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    # nothing was written: no partial project
    assert not (tmp_path / "environment.yaml").exists()
    assert (tmp_path / "flows" / "flow.py").read_text() == "mine"
    assert (tmp_path / "Dockerfile").read_text() == "FROM mine"
    forced = runner.invoke(cli, ["init", "--force", str(tmp_path)])
    assert forced.exit_code == 0
    assert (tmp_path / "flows" / "flow.py").read_text() != "mine"


def test_init_result_runs_with_dke_run(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["init", str(target)]).exit_code == 0
    result = subprocess.run(
        [sys.executable, "-m", "dke", "run", str(target / "environment.yaml"), "--param", "n=5"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sum of squares below 5: 30" in result.stdout + result.stderr
