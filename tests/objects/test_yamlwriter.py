"""dke.objects.yamlwriter: the YAML writer must round-trip exactly under YAML 1.1 (kubectl, PyYAML) and
1.2 (ruamel), and the origin comments must not change the data."""

import io

import pytest
import yaml as pyyaml  # YAML 1.1: "yes", "on", "0x1F", "1:20" are not strings there
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from dke.objects.provenance import Origin, Traced, strip
from dke.objects.yamlwriter import as_comment, scalar, to_yaml

TRICKY = [
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "true",
    "False",
    "null",
    "~",
    "",
    " lead",
    "trail ",
    "1.0",
    "0x1F",
    "0o17",
    "017",
    "1e3",
    "1_000",
    "1:20",
    "2024-01-01",
    ".inf",
    "-.5",
    "+1",
    "a: b",
    "a #b",
    "#x",
    "- x",
    "-",
    "--",
    "---",
    "*ref",
    "&a",
    "!tag",
    "%x",
    "@x",
    "`x",
    "{a}",
    "[a]",
    "'q'",
    '"q"',
    "a\\b",
    "é ü 名",
    "tab\there",
    "line\nbreak",
    "two\nlines\n",
    "x\n\n",
    "\nlead",
    "--host",
    "$(DASK_WORKER_NAME)",
    "ghcr.io/a/b:1.0",
    "a:",
    "key: value\nnext: 1",
    "<<",
    "=",
    "?",
    "|",
    ">",
    "0.0.0.0",
    "4Gi",
    "500m",
]


def load_both(text):
    return YAML(typ="safe", pure=True).load(io.StringIO(text)), pyyaml.safe_load(text)


@pytest.mark.parametrize("value", TRICKY)
def test_tricky_strings_round_trip_in_yaml_1_1_and_1_2(value):
    data = {"k": value, "list": [value], value or "empty": 1, "nested": {"args": [value, "x"]}}
    one_two, one_one = load_both(to_yaml(data))
    assert one_two == data and one_one == data


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_data = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)


@given(data=st.dictionaries(st.text(max_size=8), json_data, max_size=5))
def test_any_json_data_round_trips_with_and_without_comments(data):
    plain = to_yaml(data)
    one_two, one_one = load_both(plain)
    assert one_two == data == one_one or (not data and one_two in ({}, None))
    _, origins = strip(data)
    explained = to_yaml(data, {p: Origin("spec", "", "f.yaml", 3) for p in origins})
    assert load_both(explained)[0] == load_both(plain)[0]


def test_comments_name_every_value_line():
    data = {
        "a": Traced(1, Origin("environment", "min_workers", "env.yaml", 7, 14, ("min_workers",))),
        "b": {"c": ["x", Traced("y", Origin("default", "job.backoff_limit"))]},
        "d": Traced("z", Origin("environment", "n", "--set #1 n=z")),
    }
    plain, origins = strip(data)
    assert plain == {"a": 1, "b": {"c": ["x", "y"]}, "d": "z"}
    assert to_yaml(plain, origins).splitlines() == [
        "a: 1     # env.yaml:7 min_workers",
        "b:",
        "  c:",
        "  - x    # dke",
        '  - "y"  # default job.backoff_limit',  # YAML 1.1 reads a bare y as true
        "d: z     # --set #1 n=z",
    ]


def test_scalar_quotes_only_when_needed():
    assert scalar("dask") == "dask" and scalar("--death-timeout") == "--death-timeout"
    assert scalar("yes") == '"yes"' and scalar("8788") == '"8788"' and scalar(8788) == "8788"
    assert as_comment("a\n\nb") == "# a\n#\n# b\n"


# Strings a Kubernetes object can hold (any Unicode text but surrogates), biased towards
# what YAML readers take for something else: YAML 1.1 booleans, numbers, syntax, breaks.
AWKWARD = st.sampled_from(
    [
        "on",
        "On",
        "no",
        "NO",
        "y",
        "Y",
        "n",
        "yes",
        "off",
        "true",
        "null",
        "Null",
        "~",
        "",
        " ",
        "  x ",
        "x ",
        "1",
        "-1",
        "0x1F",
        "0o7",
        "012",
        "1e3",
        "1_0",
        "1:20",
        ".5",
        ".inf",
        "-.Inf",
        ".NaN",
        "2024-01-01",
        "a: b",
        "a:",
        ": a",
        "a #b",
        "#",
        "- ",
        "-",
        "--",
        "---",
        "...",
        "? x",
        "'",
        '"',
        "\\",
        "%TAG",
        "!x",
        "&a",
        "*a",
        "|",
        ">",
        "<<",
        "=",
        "{",
        "}",
        "[",
        "]",
        ",",
        "`",
        "@",
        "\t",
        "\r",
        "\n",
        "\r\n",
        "\x85",
        "\u2028",
        "\u2029",
        "\ufeff",
        "\u200b",
        "\x00",
        "\x7f",
        "\x1b",
        "é",
        "名",
        "😀",
        "a" * 1100,
    ]
)
K8S_TEXT = (
    st.text(max_size=40)
    | AWKWARD
    | st.lists(AWKWARD | st.text(max_size=6), min_size=1, max_size=5).map("".join)
)
K8S_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | K8S_TEXT
)
K8S_DATA = st.recursive(
    K8S_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(K8S_TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(data=st.dictionaries(K8S_TEXT, K8S_DATA, max_size=5))
def test_any_kubernetes_data_round_trips_through_yaml_1_2_and_1_1(data):
    # ruamel (YAML 1.2) and PyYAML (YAML 1.1, as kubectl-like tools read it) give back the data.
    text = to_yaml(data)
    one_two, one_one = load_both(text)
    assert one_two == data or (not data and one_two is None), text
    assert one_one == data or (not data and one_one is None), text
    _, origins = strip(data)  # the --explain comments change nothing
    explained = to_yaml(data, {p: Origin("spec", "", "w.yaml", 3) for p in origins})
    assert load_both(explained) == (one_two, one_one), explained


@pytest.mark.parametrize("key", ["A\n", "a\n", "x\r", "k\u2028", "a" * 1100, "é" * 1025, "a\nb: c"])
def test_keys_found_to_break_the_output_round_trip(key):
    data = {key: {"nested": [key, {key: key}]}, "after": key}
    one_two, one_one = load_both(to_yaml(data))
    assert one_two == data and one_one == data
