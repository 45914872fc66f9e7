"""The pipeline end to end on files, with overlays and --set (its stages: dke.environment.pipeline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dke.diagnostics import DkeError
from dke.environment.pipeline import load_environment

GOOD = Path(__file__).parent.parent / "data" / "good"
IMAGE = "ghcr.io/acme/flow:1.0"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A small project in the current directory: environment.yaml, a flow and a worker spec."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "etl.py").write_text(
        'from prefect import flow\n\n\n@flow\ndef etl(n: int, tags: list[str] = (), on: bool = False, s: str = ""): pass\n'
    )
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "worker.yaml").write_text(f"containers:\n  - name: worker\n    image: {IMAGE}\n")
    (tmp_path / "environment.yaml").write_text(
        f"name: etl\nimage: {IMAGE}\nflow:\n  entrypoint: flows/etl.py:etl\n  parameters: {{n: 1, tags: [a, b]}}\n"
        "worker_spec_file: specs/worker.yaml\nenv:\n  LOG_LEVEL: info\n  KEEP: me\nsecrets: [one, two]\n"
    )
    return tmp_path


def where(loaded):
    return [(d.code, d.file, d.line, d.path) for d in loaded.diagnostics]


def test_good_project(project):
    loaded = load_environment("environment.yaml")
    assert loaded.ok(strict=True) and loaded.diagnostics == []
    assert loaded.env.name == "etl" and loaded.env.max_workers == 2
    assert loaded.worker.spec["containers"][0]["name"] == "worker" and loaded.scheduler is None
    assert loaded.base_dir == Path(".")


@pytest.mark.parametrize("case", sorted(p.name for p in GOOD.iterdir()))
def test_good_corpus_is_clean(case, monkeypatch):
    monkeypatch.chdir(GOOD / case)
    (file,) = [p.name for p in Path(".").glob("environment.y*ml")]
    loaded = load_environment(file)
    assert loaded.diagnostics == [] and loaded.env is not None


def test_overlays_deep_merge_replace_lists_and_delete_with_null(project):
    (project / "prod.yaml").write_text(
        "namespace: prod\nenv:\n  LOG_LEVEL: warning\n  KEEP: null\nsecrets: [three]\n"
        "flow:\n  parameters: {n: 2}\nworker_spec_file: null\n"
    )
    loaded = load_environment("environment.yaml", ["prod.yaml"])
    assert loaded.ok(), loaded.diagnostics
    env = loaded.env
    assert env.namespace == "prod"
    assert env.env == {"LOG_LEVEL": "warning"}  # deep merge; null deleted KEEP
    assert env.secrets == ["three"]  # lists are replaced
    assert env.flow.parameters == {"n": 2, "tags": ["a", "b"]} and env.flow.entrypoint == "flows/etl.py:etl"
    assert env.worker_spec_file is None and loaded.worker is None


def test_right_most_source_wins_and_set_comes_last(project):
    (project / "a.yaml").write_text("max_workers: 3\n")
    (project / "b.yaml").write_text("max_workers: 4\nmin_workers: 2\n")
    loaded = load_environment("environment.yaml", ["a.yaml", "b.yaml"], ["max_workers=6", "env.NEW=x"])
    assert (loaded.env.min_workers, loaded.env.max_workers) == (2, 6)
    assert loaded.env.env == {"LOG_LEVEL": "info", "KEEP": "me", "NEW": "x"}
    loaded = load_environment("environment.yaml", ["b.yaml", "a.yaml"])
    assert loaded.env.max_workers == 3


def test_set_values_are_yaml_typed(project):
    loaded = load_environment(
        "environment.yaml",
        (),
        [
            "flow.parameters.n=42",
            "flow.parameters.on=true",
            "secrets=[x, y]",
            "flow.parameters.s='42'",
            "env.KEEP=null",
            "labels.app\\.kubernetes\\.io/part-of=etl",
        ],
    )
    assert loaded.ok(), loaded.diagnostics
    assert loaded.env.flow.parameters == {"n": 42, "tags": ["a", "b"], "on": True, "s": "42"}
    assert loaded.env.secrets == ["x", "y"] and "KEEP" not in loaded.env.env
    assert loaded.env.labels == {"app.kubernetes.io/part-of": "etl"}


def test_diagnostic_points_into_the_overlay_that_supplied_the_value(project):
    (project / "prod.yaml").write_text("# prod\nnamespace: Prod\nenv:\n  LOG_LEVEL: 5\n")
    assert where(load_environment("environment.yaml", ["prod.yaml"])) == [
        ("DKE103", "prod.yaml", 2, "$.namespace"),
        ("DKE102", "prod.yaml", 4, "$.env.LOG_LEVEL"),
    ]


def test_diagnostic_points_at_the_set_that_supplied_the_value(project):
    loaded = load_environment("environment.yaml", (), ["max_workers=2", "min_workers=many"])
    assert [(d.code, d.file, d.line, d.column, d.path) for d in loaded.diagnostics] == [
        ("DKE102", "--set #2 min_workers=many", 1, 13, "$.min_workers")
    ]
    loaded = load_environment("environment.yaml", (), ["min_workers=5"])
    assert where(loaded) == [("DKE302", "--set #1 min_workers=5", 1, "$.min_workers")]


def test_a_value_that_should_be_a_string_is_told_how_to_write_it_where_it_came_from(project):
    (project / "prod.yaml").write_text("env:\n  LOG_LEVEL: false\n  KEEP: 1.5\n")
    loaded = load_environment("environment.yaml", ["prod.yaml"], ["env.A=1", "env.B=false", "env.C=true"])
    assert sorted((d.file, d.message) for d in loaded.diagnostics) == [
        ("--set #1 env.A=1", "expected a string, found a number; pass it as a string: --set-string env.A=1"),
        (
            "--set #2 env.B=false",
            "expected a string, found a boolean; pass it as a string: --set-string env.B=false",
        ),
        (
            "--set #3 env.C=true",
            "expected a string, found a boolean; pass it as a string: --set-string env.C=true",
        ),
        ("prod.yaml", 'expected a string, found a boolean; quote it: "false"'),
        ("prod.yaml", 'expected a string, found a number; quote it: "1.5"'),
    ]


def test_later_overlay_fixes_an_earlier_mistake(project):
    (project / "a.yaml").write_text("max_workers: 0\n")
    (project / "b.yaml").write_text("max_workers: 5\n")
    assert load_environment("environment.yaml", ["a.yaml", "b.yaml"]).ok()
    assert where(load_environment("environment.yaml", ["b.yaml", "a.yaml"])) == [
        ("DKE103", "a.yaml", 1, "$.max_workers")
    ]


def test_spec_files_resolve_relative_to_the_file_that_names_them(project):
    (project / "envs" / "prod" / "specs").mkdir(parents=True)
    (project / "envs" / "prod" / "specs" / "worker.yaml").write_text("replicas: 3\n")
    (project / "envs" / "prod" / "prod.yaml").write_text("worker_spec_file: specs/worker.yaml\n")
    loaded = load_environment("environment.yaml", ["envs/prod/prod.yaml"])
    assert where(loaded) == [("DKE201", "envs/prod/specs/worker.yaml", 1, "$.replicas")]


def test_environment_in_a_subdirectory_names_spec_files_from_the_current_one(project):
    sub = project / "deploy"
    sub.mkdir()
    (project / "environment.yaml").rename(sub / "environment.yaml")
    (project / "specs").rename(sub / "specs")
    (sub / "specs" / "worker.yaml").write_text("containers:\n  - name: w\n    image: other:1\n")
    loaded = load_environment("deploy/environment.yaml")
    assert [(c, f, line) for c, f, line, _ in where(loaded) if c == "DKE300"] == [
        ("DKE300", "deploy/specs/worker.yaml", 3)
    ]
    assert loaded.base_dir == Path("deploy")


def test_missing_spec_file_is_an_error_at_the_key(project):
    loaded = load_environment("environment.yaml", (), ["scheduler_spec_file=specs/nope.yaml"])
    assert where(loaded) == [
        ("DKE200", "--set #1 scheduler_spec_file=specs/nope.yaml", 1, "$.scheduler_spec_file")
    ]
    assert not loaded.ok()


def test_spec_image_checked_against_the_overridden_image(project):
    loaded = load_environment("environment.yaml", (), ["image=ghcr.io/acme/flow:2.0"])
    assert where(loaded) == [("DKE300", "specs/worker.yaml", 3, "$.containers[0].image")]


@pytest.mark.parametrize("bad", ["max_workers", "=1", "a..b=1", "x=[1", ".a=1"])
def test_bad_set_is_a_usage_error(project, bad):
    with pytest.raises(DkeError) as info:
        load_environment("environment.yaml", (), [bad])
    assert info.value.exit_code == 2 and "--set" in info.value.message


def test_unsupported_kube_version_is_a_usage_error(project):
    with pytest.raises(DkeError) as info:
        load_environment("environment.yaml", kube_version="1.2")
    assert info.value.exit_code == 2 and "1.2" in info.value.message


def test_load_errors_are_diagnostics_not_exceptions(project):
    for args in (("missing.yaml",), ("environment.yaml", ["missing.yaml"])):
        loaded = load_environment(*args)
        assert [d.code for d in loaded.diagnostics] == ["DKE001"] and loaded.env is None and not loaded.ok()


def test_warnings_fail_only_when_strict(project):
    loaded = load_environment("environment.yaml", (), ["image=ghcr.io/acme/flow", "worker_spec_file=null"])
    assert [d.code for d in loaded.diagnostics] == ["DKE301"]
    assert loaded.ok() and not loaded.ok(strict=True)


def test_an_empty_overlay_changes_nothing(project):
    # Helm accepts empty values files; an overlay with only comments is a no-op, not an error.
    (project / "empty.yaml").write_text("# nothing to override yet\n")
    loaded = load_environment("environment.yaml", ["empty.yaml"])
    assert loaded.ok(), loaded.diagnostics
    assert loaded.merged.data == load_environment("environment.yaml").merged.data


def test_overlay_that_deletes_a_required_key_is_blamed_for_it(project):
    (project / "prod.yaml").write_text("max_workers: 3\nimage: null\n")
    loaded = load_environment("environment.yaml", ["prod.yaml"])
    [d] = loaded.diagnostics
    assert (d.code, d.file, d.line, d.column, d.path) == ("DKE101", "prod.yaml", 2, 1, "$.image")


def test_the_docstring_states_the_order_the_stages_really_run(project, monkeypatch):
    import re

    import dke.environment.checks as checks
    import dke.environment.load as load
    import dke.environment.specs as specs
    import dke.environment.validate as validate
    from dke.environment import pipeline

    # the function each numbered stage of the docstring starts with
    stages = {
        1: (pipeline, "parse_set"),
        2: (load, "load_mapping"),
        3: (pipeline, "layer"),
        4: (validate, "validate_environment"),
        5: (pipeline, "from_validated"),
        6: (checks, "check_environment"),
        7: (specs, "load_spec_file"),
        8: (checks, "check_extra_images"),
    }
    calls = []
    for number, (module, name) in stages.items():
        real = getattr(module, name)
        target = pipeline if hasattr(pipeline, name) else module

        def spy(*args, _real=real, _number=number, **kwargs):
            calls.append(_number)
            return _real(*args, **kwargs)

        monkeypatch.setattr(target, name, spy)
    loaded = load_environment("environment.yaml", (), ["max_workers=3"])
    assert loaded.ok(), loaded.diagnostics
    order = [n for i, n in enumerate(calls) if i == 0 or calls[i - 1] != n]
    documented = [int(n) for n in re.findall(r"^(\d)\. ", pipeline.__doc__, re.M)]
    assert documented == list(stages) and order == documented


def test_a_set_that_deletes_a_required_key_is_blamed_for_it(project):
    loaded = load_environment("environment.yaml", sets=["max_workers=3,image=null"])
    [d] = loaded.diagnostics
    assert (d.code, d.file, d.line, d.column, d.path) == (
        "DKE101",
        "--set #1 max_workers=3,image=null",
        1,
        15,
        "$.image",
    )
    assert d.message.startswith("required key 'image' is deleted here (null)")


def test_a_mapping_a_set_creates_is_blamed_for_what_it_lacks(project):
    (project / "bare.yaml").write_text(f"name: etl\nimage: {IMAGE}\n")
    loaded = load_environment("bare.yaml", sets=["max_workers=2,flow.parameters.n=1"])
    [d] = loaded.diagnostics
    assert (d.code, d.file, d.line, d.column, d.path) == (
        "DKE101",
        "--set #1 max_workers=2,flow.parameters.n=1",
        1,
        15,
        "$.flow",
    )
    assert "entrypoint" in d.message


def test_an_unknown_key_in_a_set_points_at_that_key_s_column(project):
    loaded = load_environment(
        "environment.yaml", sets=["max_workers=2,job.backof_limit=2", "min_workers=1,labelz.a=b"]
    )
    assert {d.path: (d.code, d.file, d.line, d.column) for d in loaded.diagnostics} == {
        "$.job.backof_limit": ("DKE100", "--set #1 max_workers=2,job.backof_limit=2", 1, 19),
        "$.labelz": ("DKE100", "--set #2 min_workers=1,labelz.a=b", 1, 15),
    }
