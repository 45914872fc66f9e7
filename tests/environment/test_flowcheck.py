"""The flow checked from its source: file, syntax, function, @flow, parameters (never imported)."""

from __future__ import annotations

import sys
import textwrap
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dke.diagnostics import DkeError
from dke.environment import flowcheck
from dke.environment.flowcheck import (
    ENTRYPOINT_MISSING,
    FLOW_MISSING,
    FLOW_SYNTAX,
    NOT_A_FLOW,
    PARAMETER_MISSING,
    PARAMETER_TYPE,
    UNKNOWN_PARAMETER,
    FlowSignature,
    SourceProblem,
    find_flow,
    parse_source,
    simple_type,
)
from dke.environment.pipeline import load_environment

ROOT = Path(__file__).parent.parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/environment.yaml"))


def flow_of(source: str, name: str = "etl"):
    import ast

    return find_flow(ast.parse(textwrap.dedent(source)), name, "flows/etl.py")


# --- what is a flow -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from prefect import flow\n@flow\ndef etl(n: int = 1): ...",
        "from prefect import flow\n@flow(log_prints=True, name='x')\ndef etl(n: int = 1): ...",
        "import prefect\n@prefect.flow\ndef etl(n: int = 1): ...",
        "import prefect\n@prefect.flow()\ndef etl(n: int = 1): ...",
        "import prefect as p\n@p.flow(retries=2)\ndef etl(n: int = 1): ...",
        "from prefect import flow as f\n@f\ndef etl(n: int = 1): ...",
        "from prefect.flows import flow\n@flow\ndef etl(n: int = 1): ...",
        "import prefect.flows\n@prefect.flows.flow\ndef etl(n: int = 1): ...",
        "from prefect import *\n@flow\nasync def etl(n: int = 1): ...",
        "from prefect import flow\ndef _etl(n: int = 1): ...\netl = flow(_etl)",
        "from prefect import flow\ndef _etl(n: int = 1): ...\netl = flow(name='nightly')(_etl)",
        "import prefect\ndef _etl(n: int = 1): ...\netl = prefect.flow(_etl, name='x')",
        "try:\n  from prefect import flow\nexcept ImportError:\n  raise\nif True:\n  @flow\n  def etl(n: int = 1): ...",
    ],
    ids=lambda s: s.replace("\n", " | ")[:60],
)
def test_flow_shapes_are_recognised_with_their_signature(source):
    found = flow_of(source)
    assert isinstance(found, FlowSignature), found
    assert [p.name for p in found.parameters] == ["n"] and not found.parameters[0].required


@pytest.mark.parametrize(
    "source, words",
    [
        ("def etl(n=1): ...", "is not a Prefect flow: decorate it with @flow"),
        ("from prefect import task\n@task\ndef etl(): ...", "is a Prefect task, not a flow"),
        ("import prefect\n@prefect.task(retries=1)\ndef etl(): ...", "is a Prefect task"),
        ("from prefect import flow\n@flow\ndef main(): ...\ndef etl(): ...", "(this file's flows: main)"),
    ],
)
def test_not_a_flow(source, words):
    found = flow_of(source)
    assert isinstance(found, SourceProblem) and found.code == NOT_A_FLOW and words in found.message
    assert found.line == source.count("\n", 0, source.index("def etl")) + 1


@pytest.mark.parametrize(
    "source",
    [
        "from helpers import etl",  # defined elsewhere: importing would tell, parsing cannot
        "from helpers import *",
        "import functools\nfrom prefect import flow\n@functools.cache\ndef etl(): ...",  # unknown decorator
        "from prefect import flow\n@flow\ndef etl(): ...\netl = make(etl)",  # the last binding wins
        "class etl: ...",
    ],
)
def test_what_the_source_cannot_tell_is_not_judged(source):
    assert flow_of(source) is None


def test_a_decorator_under_flow_hides_the_signature():
    found = flow_of("from prefect import flow\nimport functools\n@flow\n@functools.wraps(f)\ndef etl(n): ...")
    assert isinstance(found, FlowSignature) and found.parameters is None


@pytest.mark.parametrize(
    "source, hint",
    [
        ("from prefect import flow\n@flow\ndef elt(): ...", "did you mean 'elt'?"),
        (
            "from prefect import flow\n@flow\ndef main(): ...\n@flow\ndef other(): ...",
            "its flows: main, other",
        ),
        ("x = 1", "it defines no @flow function"),
        # only in the __main__ block: does not exist when Prefect imports the module
        ("from prefect import flow\nif __name__ == '__main__':\n    @flow\n    def etl(): ...", "no @flow"),
    ],
)
def test_a_missing_function_with_did_you_mean(source, hint):
    found = flow_of(source)
    assert isinstance(found, SourceProblem) and found.code == FLOW_MISSING
    assert found.message.startswith("flows/etl.py has no function 'etl'") and hint in found.message


def test_parameters_as_python_binds_keywords():
    found = flow_of(
        "from prefect import flow\n@flow\ndef etl(a, /, b, c: int = 1, *args, d: 'list[str]', e=None, **kw): ..."
    )
    params = {p.name: p for p in found.parameters}
    assert [(p.name, p.required, p.by_name) for p in found.parameters] == [
        ("a", True, False),
        ("b", True, True),
        ("c", False, True),
        ("d", True, True),
        ("e", False, True),
    ]
    assert found.var_keyword and params["d"].annotation == "'list[str]'"
    assert params["d"].kind == {"type": "list", "items_schema": {"type": "str"}}
    assert (params["c"].line, params["c"].column) == (3, 18)


# --- syntax: at Python's own position -----------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "def f(:\n    pass\n",
        "from prefect import flow\n\n@flow\ndef etl()\n    return 1\n",
        "def f():\nreturn 1\n",  # IndentationError
        "def f():\n\tif x:\n        pass\n\tpass\n",  # TabError
        "x = (1,\n",
        "print 'hello'\n",
        "x = 'caf\u00e9' +\n",
    ],
)
def test_syntax_errors_are_where_python_reports_them(tmp_path, source):
    path = tmp_path / "etl.py"
    path.write_text(source)
    try:
        compile(source, str(path), "exec")
    except SyntaxError as e:
        expected = (e.lineno, e.offset)
    problem = parse_source(path, "etl.py")
    assert isinstance(problem, SourceProblem) and problem.code == FLOW_SYNTAX
    assert (problem.line, problem.column) == expected


@given(st.text(alphabet="def f():\n (x)=:,1'\t", max_size=40))
def test_any_source_parses_or_fails_at_pythons_position(source):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.py"
        path.write_text(source)
        result = parse_source(path, "f.py")
        try:
            compile(source, "f.py", "exec")
        except SyntaxError as e:
            assert isinstance(result, SourceProblem)
            assert (result.line, result.column) == (e.lineno or 1, max(e.offset or 1, 1))
        else:
            assert not isinstance(result, SourceProblem)


@pytest.mark.parametrize("data", [b"x = 1\x00\n", b"x = '\xff'\n", b"# -*- coding: nope -*-\n"])
def test_unreadable_source_is_one_diagnostic(tmp_path, data):
    path = tmp_path / "etl.py"
    path.write_bytes(data)
    problem = parse_source(path, "etl.py")
    assert isinstance(problem, SourceProblem) and problem.code == FLOW_SYNTAX


# --- annotations: checked as Prefect (pydantic, lax) checks them ---------------------------------

CHECKED = [
    "int",
    "float",
    "bool",
    "str",
    "list",
    "dict",
    "list[int]",
    "List[str]",
    "dict[str, float]",
    "Optional[int]",
    "int | None",
    "Union[int, str]",
    "str | list[str]",
    "typing.Optional[bool]",
    "Literal['a', 'b', 3]",
    "'int'",
]


@pytest.mark.parametrize(
    "annotation", ["datetime.date", "MyModel", "list[Path]", "Callable[[], int]", "tuple"]
)
def test_other_annotations_are_not_checked(annotation):
    assert simple_type(annotation) is None


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@given(annotation=st.sampled_from(CHECKED), value=VALUES)
def test_values_are_accepted_exactly_when_pydantic_accepts_them(annotation, value):
    """What Prefect does with a flow's parameters: validate them with pydantic, in lax mode."""
    from pydantic import TypeAdapter, ValidationError

    python_type = eval(  # noqa: S307 - our own fixed list of annotations
        annotation.strip("'"),
        {**vars(typing), "typing": typing, "list": list, "dict": dict},
    )
    param = flowcheck.Parameter("p", False, True, annotation, simple_type(annotation))
    try:
        TypeAdapter(python_type).validate_python(value)
        accepted = True
    except ValidationError:
        accepted = False
    assert (flowcheck.value_problem(param, value) is None) == accepted


def test_what_prefect_itself_refuses_is_refused():
    from prefect import flow

    @flow
    def etl(n: int, name: str = "x", tags: list[str] | None = None, ratio: float = 1.0): ...

    sig = flow_of(
        "from prefect import flow\n@flow\n"
        "def etl(n: int, name: str = 'x', tags: list[str] | None = None, ratio: float = 1.0): ..."
    )
    for params in (
        {"n": "3"},
        {"n": 3.5},
        {"n": 1, "name": 7},
        {"n": 1, "tags": "a"},
        {"n": 1, "ratio": "x"},
    ):
        try:
            etl.validate_parameters(params)
            prefect_ok = True
        except Exception:  # noqa: BLE001 - ParameterTypeError
            prefect_ok = False
        ours = all(flowcheck.value_problem(sig.parameter(k), v) is None for k, v in params.items())
        assert ours == prefect_ok, params


# --- module entrypoints: found as files, never imported -----------------------------------------


def test_module_entrypoints_are_found_as_files_and_never_imported(tmp_path):
    pkg = tmp_path / "acme" / "flows"
    pkg.mkdir(parents=True)
    (tmp_path / "acme" / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / "etl.py").write_text("def etl(): ...\n")
    before = set(sys.modules)
    assert flowcheck.locate("acme.flows.etl:etl", tmp_path, []) == (pkg / "etl.py", str(pkg / "etl.py"))
    assert flowcheck.locate("acme.flows:etl", tmp_path, []) == (pkg / "__init__.py", str(pkg / "__init__.py"))
    assert flowcheck.locate("acme.nothing:etl", tmp_path, []) == (None, "")
    assert (
        flowcheck.locate("acme.flows.etl:etl", tmp_path / "elsewhere", [str(tmp_path)])[0] == pkg / "etl.py"
    )
    assert not any(m.startswith("acme") for m in set(sys.modules) - before)


# --- in the pipeline: positions, run mode, --param -----------------------------------------------


def project(tmp_path, flow_source: str, parameters: str = "{n: 3}", extra: str = "") -> str:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "etl.py").write_text(textwrap.dedent(flow_source))
    env = tmp_path / "env.yaml"
    env.write_text(
        f"name: etl\nimage: x.org/etl:1.0\nflow:\n  entrypoint: flows/etl.py:etl\n  parameters: {parameters}\n{extra}"
    )
    return str(env)


FLOW = """\
from prefect import flow


@flow
def etl(n: int, label: str = "x", tags: list[str] | None = None):
    return n
"""


def found(loaded):
    return [(d.code, d.severity, Path(d.file).name, d.line, d.column, d.path) for d in loaded.diagnostics]


def test_a_valid_flow_gives_its_signature_and_no_diagnostics(tmp_path):
    loaded = load_environment(project(tmp_path, FLOW))
    assert loaded.ok() and loaded.diagnostics == []
    assert loaded.flow.function == "etl" and [p.name for p in loaded.flow.parameters] == [
        "n",
        "label",
        "tags",
    ]


def test_diagnostics_point_at_the_environment_and_the_flow_file(tmp_path):
    env = project(tmp_path, FLOW.replace("def etl", "def elt"))
    [d] = load_environment(env).diagnostics
    assert (d.code, d.file, d.line, d.column, d.path) == (FLOW_MISSING, env, 4, 15, "$.flow.entrypoint")
    assert "did you mean 'elt'?" in d.message

    project(tmp_path, FLOW.replace("def etl(n: int", "def etl(n: int,,"))
    [d] = load_environment(env).diagnostics
    assert (d.code, d.file, d.line, d.column) == (FLOW_SYNTAX, str(tmp_path / "flows" / "etl.py"), 5, 16)
    assert f"{env}:4:15" in d.message


def test_parameters_in_the_environment_are_checked_at_their_keys_and_values(tmp_path):
    env = project(tmp_path, FLOW, "{n: three, lable: y, tags: [a, 1]}")
    assert found(load_environment(env)) == [
        (PARAMETER_TYPE, "error", "env.yaml", 5, 19, "$.flow.parameters.n"),
        (UNKNOWN_PARAMETER, "error", "env.yaml", 5, 26, "$.flow.parameters.lable"),
        (PARAMETER_TYPE, "error", "env.yaml", 5, 42, "$.flow.parameters.tags"),
    ]
    messages = [d.message for d in load_environment(env).diagnostics]
    assert "did you mean 'label'?" in messages[1]
    assert "(at 1)" in messages[2] and "flows/etl.py:5:35" in messages[2]


def test_kwargs_take_any_name_and_a_text_parameter_says_to_quote_numbers(tmp_path):
    env = project(tmp_path, FLOW.replace("None)", "None, **rest)"), "{n: 1, anything: 2, label: 42}")
    [d] = load_environment(env).diagnostics
    assert d.code == PARAMETER_TYPE and "quote it to pass text" in d.message


def test_a_missing_file_is_a_warning_for_lint_and_an_error_for_a_local_run(tmp_path):
    env = project(tmp_path, FLOW)
    (tmp_path / "flows" / "etl.py").unlink()
    assert found(load_environment(env)) == [
        (ENTRYPOINT_MISSING, "warning", "env.yaml", 4, 15, "$.flow.entrypoint")
    ]
    assert found(load_environment(env, local_run=True)) == [
        (ENTRYPOINT_MISSING, "error", "env.yaml", 4, 15, "$.flow.entrypoint")
    ]
    # a module entrypoint not found here: it may be in the image, nothing to say
    text = Path(env).read_text().replace("flows/etl.py:etl", "acme.nowhere:etl")
    Path(env).write_text(text)
    assert load_environment(env, local_run=True).diagnostics == []


def test_required_parameters_warn_in_lint_and_fail_a_run(tmp_path):
    env = project(tmp_path, FLOW, "{label: y}")
    assert found(load_environment(env)) == [
        (PARAMETER_MISSING, "warning", "env.yaml", 5, 3, "$.flow.parameters")
    ]
    assert found(load_environment(env, params=[])) == [
        (PARAMETER_MISSING, "error", "env.yaml", 5, 3, "$.flow.parameters")
    ]
    assert load_environment(env, params=["n=4"]).ok()
    with_deployment = project(tmp_path, FLOW, "{label: y}", "deployment: {name: d, parameters: {n: 1}}\n")
    assert load_environment(with_deployment).diagnostics == []


def test_the_deployments_parameters_and_each_schedules_are_checked_at_their_keys(tmp_path):
    deployment = (
        "deployment:\n"
        "  parameters: {n: many, label: ok}\n"
        "  schedules:\n"
        "    - cron: '0 2 * * *'\n"
        "      parameters: {lable: nightly}\n"
        "    - interval: 3600\n"
        "      parameters: {n: 2, tags: [a]}\n"
    )
    env = project(tmp_path, FLOW, extra=deployment)
    assert found(load_environment(env)) == [
        (PARAMETER_TYPE, "error", "env.yaml", 7, 19, "$.deployment.parameters.n"),
        (UNKNOWN_PARAMETER, "error", "env.yaml", 10, 20, "$.deployment.schedules[0].parameters.lable"),
    ]
    assert "did you mean 'label'?" in load_environment(env).diagnostics[1].message


def test_params_are_checked_at_their_place_on_the_command_line_and_become_flow_parameters(tmp_path):
    env = project(tmp_path, FLOW)
    loaded = load_environment(env, params=["nn=1", "tags=a", "label=ok"])
    assert [(d.code, d.file, d.line, d.column, d.path) for d in loaded.diagnostics] == [
        (UNKNOWN_PARAMETER, "--param #1 nn=1", 1, 1, "$.nn"),
        (PARAMETER_TYPE, "--param #2 tags=a", 1, 6, "$.tags"),
    ]
    loaded = load_environment(env, params=["n=7", "tags=[a]", "n=8"])
    assert loaded.ok() and loaded.env.flow.parameters == {"n": 8, "tags": ["a"]}


@pytest.mark.parametrize("arg", ["novalue", "1bad=2", "x=[unclosed", "=3"])
def test_param_syntax_is_a_usage_error(tmp_path, arg):
    with pytest.raises(DkeError) as e:
        load_environment(project(tmp_path, FLOW), params=[arg])
    assert e.value.exit_code == 2 and "--param" in str(e.value)


# --- the examples are real flows ----------------------------------------------------------------


@pytest.mark.parametrize("env", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_flow_is_found_with_its_signature(env):
    loaded = load_environment(str(env), local_run=True)
    assert loaded.ok() and loaded.diagnostics == []
    assert loaded.flow is not None and loaded.flow.parameters is not None


@pytest.mark.parametrize("env", EXAMPLES, ids=lambda p: p.parent.name)
def test_a_misspelt_example_entrypoint_suggests_the_flow(env, tmp_path):
    import shutil

    copy = tmp_path / env.parent.name
    shutil.copytree(env.parent, copy)
    text = (copy / "environment.yaml").read_text()
    entrypoint = load_environment(str(env)).env.flow.entrypoint
    function = entrypoint.rpartition(":")[2]
    (copy / "environment.yaml").write_text(text.replace(entrypoint, entrypoint + "s"))
    [d] = [d for d in load_environment(str(copy / "environment.yaml")).diagnostics if d.is_error]
    assert d.code == FLOW_MISSING and f"did you mean {function!r}?" in d.message
