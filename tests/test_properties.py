"""Mutated environment files never crash `dke lint`: one clean report, exit 0 or 1, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dke.cli import cli

FULL = Path(__file__).parent / "data" / "good" / "full"
ORIGINAL = (FULL / "environment.yaml").read_text()
ORIGINAL_LINES = ORIGINAL.splitlines(keepends=True)
JUNK = st.sampled_from(
    [
        "",
        "- x",
        "[",
        "]",
        "{",
        "}",
        ": :",
        "&a",
        "*a",
        "*nope",
        "!!binary AAA",
        "!!python/object:os.system x",
        "? x",
        "|",
        ">-",
        "---",
        "...",
        "%YAML 1.1",
        "'",
        '"',
        "\t",
        "\x00",
        "\ufeff",
        "<<: *a",
        "x: &a [*a]",
        "name: 1",
        "image: ~",
        "min_workers: -5",
        "max_workers: 1e400",
        "flow: []",
        "env: {1: 2}",
        "- - -",
        "#",
        "@",
        "`",
        "scheduler_spec_file: /",
        "worker_spec_file: ../..",
        "scheduler_spec_file: environment.yaml",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def yaml_scalar(value) -> str:
    import json

    return json.dumps(value, allow_nan=True) if not isinstance(value, (list, dict)) else json.dumps(value)


@st.composite
def mutated(draw) -> bytes:
    lines = list(ORIGINAL_LINES)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "swap", "junk", "indent", "dedent", "duplicate", "truncate"]))
        line = lines[i]
        if kind == "delete":
            del lines[i]
        elif kind == "swap" and ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {yaml_scalar(draw(VALUES))}\n"
        elif kind == "junk":
            lines.insert(i, draw(JUNK) + "\n")
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(1, 5)) + line
        elif kind == "dedent":
            lines[i] = line.lstrip()
        elif kind == "duplicate":
            lines.insert(i, line)
        else:
            lines[i] = line[: draw(st.integers(0, len(line)))]
        if not lines:
            break
    data = "".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # random bytes somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=6)) + data[at:]
    return data


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    shutil.copytree(FULL, root, dirs_exist_ok=True)
    return root


def run_lint(project: Path, data: bytes, *extra: str):
    (project / "environment.yaml").write_bytes(data)
    result = CliRunner().invoke(cli, ["lint", str(project / "environment.yaml"), *extra])
    return result


def assert_clean_outcome(result) -> None:
    # catch_exceptions=True: a crash shows up as result.exception, not as a raised error
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_the_unmutated_file_is_clean(project):
    result = run_lint(project, ORIGINAL.encode())
    assert result.exit_code == 0, result.output


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)  # counts: the profile
@given(data=mutated())
def test_mutated_files_never_crash(project, data):
    assert_clean_outcome(run_lint(project, data))


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)  # counts: the profile
@given(data=st.binary(max_size=200))
def test_random_bytes_never_crash(project, data):
    assert_clean_outcome(run_lint(project, data))


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)  # counts: the profile
@given(
    key=st.sampled_from(
        [
            "name",
            "image",
            "flow",
            "flow.entrypoint",
            "flow.parameters",
            "min_workers",
            "max_workers",
            "env",
            "env.X",
            "secrets",
            "labels",
            "job",
            "job.backoff_limit",
            "worker_spec_file",
            "nope",
            "flow.parameters.deep.er",
        ]
    ),
    value=st.text(max_size=15).filter(lambda v: "\x00" not in v),
)
def test_any_set_value_is_a_report_or_a_usage_error(project, key, value):
    result = run_lint(project, ORIGINAL.encode(), "--set", f"{key}={value}")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output


# --- --set round trip: the assignments dke suggests parse back to the same data ----------

from dke.environment.load import Document  # noqa: E402
from dke.environment.merge import SetString, layer, parse_set, set_text  # noqa: E402

KEYS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
)
# no null and no empty mapping as a mapping's value: null deletes, {} sets nothing
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(KEYS, inner.filter(lambda v: v is not None and v != {}), min_size=1, max_size=3)
    ),
    max_leaves=8,
)


def _through_flags(flags: list[str]) -> dict:
    docs = [parse_set(i, f) for i, f in enumerate(flags)]
    return layer([Document("base", {}), *docs]).data


@given(data=st.dictionaries(KEYS, VALUES.filter(lambda v: v is not None and v != {}), min_size=1, max_size=3))
def test_suggested_set_flags_parse_back_to_the_data(data):
    assignments = set_text((), data)
    assert _through_flags([",".join(assignments)]) == data  # one flag, comma-separated
    assert _through_flags(assignments) == data  # or one flag each


STRINGS = st.recursive(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
    lambda inner: st.dictionaries(KEYS, inner.filter(lambda v: v != {}), min_size=1, max_size=3),
    max_leaves=6,
)


@given(data=st.dictionaries(KEYS, STRINGS.filter(lambda v: v != {}), min_size=1, max_size=3))
def test_suggested_set_string_flags_parse_back_to_the_same_strings(data):
    flag = SetString(",".join(set_text((), data, string=True)))
    assert _through_flags([flag]) == data
