"""The positioned YAML loader: plain data, exact positions, one clean error per bad input."""

from __future__ import annotations

import pytest

from dke.diagnostics import DkeError
from dke.environment.load import (
    MAX_DEPTH,
    MAX_NODES,
    Document,
    Pos,
    json_path,
    load_file,
    load_mapping,
    parse_yaml,
)

TEXT = """\
# a comment
name: etl
flow:
  entrypoint: flows/etl.py:etl
  parameters: {n: 100, tags: [a, b]}
secrets:
  - prefect-api
  - other
env:
  A: "1"
"""


def load_text(text: str, **kwargs) -> Document:
    return parse_yaml("env.yaml", text, **kwargs)[0]


def error_of(text: str, **kwargs):
    with pytest.raises(DkeError) as info:
        parse_yaml("env.yaml", text, **kwargs)
    (d,) = info.value.diagnostics
    assert d.file == "env.yaml" and d.severity == "error"
    return d


def test_data_is_plain_python():
    doc = load_text(TEXT)
    assert doc.data == {
        "name": "etl",
        "flow": {"entrypoint": "flows/etl.py:etl", "parameters": {"n": 100, "tags": ["a", "b"]}},
        "secrets": ["prefect-api", "other"],
        "env": {"A": "1"},
    }

    def types(value):
        if isinstance(value, dict):
            return {type(value)} | {type(k) for k in value} | set().union(*map(types, value.values()))
        if isinstance(value, list):
            return {type(value)} | set().union(*map(types, value))
        return {type(value)}

    # nothing of ruamel's round-trip classes leaks downstream
    assert types(doc.data) <= {dict, list, str, int}


def test_positions_of_keys_and_values():
    doc = load_text(TEXT)
    assert doc.keys[("name",)] == Pos(2, 1)
    assert doc.values[("name",)] == Pos(2, 7)
    assert doc.keys[("flow", "entrypoint")] == Pos(4, 3)
    assert doc.values[("flow", "entrypoint")] == Pos(4, 15)
    assert doc.values[("flow", "parameters", "n")] == Pos(5, 19)
    assert doc.values[("flow", "parameters", "tags", 1)] == Pos(5, 34)
    assert doc.values[("secrets", 0)] == Pos(7, 5)
    assert doc.values[("secrets", 1)] == Pos(8, 5)
    assert doc.values[("env", "A")] == Pos(10, 6)


def test_pos_prefers_value_or_key_and_falls_back_to_the_nearest_ancestor():
    doc = load_text(TEXT)
    assert doc.pos(("name",)) == Pos(2, 7)
    assert doc.pos(("name",), prefer_key=True) == Pos(2, 1)
    # a key that is not there (a missing one): its mapping's position
    assert doc.pos(("flow", "nope", "deeper")) == doc.pos(("flow",))
    assert doc.pos(()) == Pos(2, 1)


def test_diagnostic_carries_file_position_and_json_path():
    d = load_text(TEXT).diagnostic(("flow", "parameters", "tags", 1), "DKE999", "boom")
    assert (d.file, d.line, d.column, d.path, d.code, d.message) == (
        "env.yaml",
        5,
        34,
        "$.flow.parameters.tags[1]",
        "DKE999",
        "boom",
    )


@pytest.mark.parametrize(
    "path, expected",
    [
        ((), "$"),
        (("name",), "$.name"),
        (("secrets", 0), "$.secrets[0]"),
        (("labels", "app.kubernetes.io/name"), "$.labels['app.kubernetes.io/name']"),
        (("env", "LOG_LEVEL"), "$.env.LOG_LEVEL"),
        (("a-b_c",), "$['a-b_c']"),
        (("env", "2X"), "$.env['2X']"),
    ],
)
def test_json_path(path, expected):
    assert json_path(path) == expected


@pytest.mark.parametrize(
    "text, line, column, code, words",
    [
        ("name: a\nimage: [b\nflow: x\n", 2, 8, "DKE003", "'[' opened here is not closed"),
        ("name: a\nflow:\n\tentrypoint: a:f\n", 3, 1, "DKE003", "tab character"),
        ("name: a\nimage: b\nname: c\n", 3, 1, "DKE003", 'duplicate key "name"'),
        ("flow:\n  a: 1\n  b: 2\n  a: 3\n", 4, 3, "DKE003", 'duplicate key "a"'),
        ("", 1, 1, "DKE005", "empty"),
        ("# only a comment\n", 1, 1, "DKE005", "empty"),
        ("~\n", 1, 1, "DKE005", "empty"),
        ("a: 1\n---\na: 2\n", 2, 1, "DKE003", "several"),
        ("name: a\n1: b\n", 2, 1, "DKE004", "must be a string"),
        ("name: etl\nimage: a\x01b\n", 2, 9, "DKE003", "U+0001 is not allowed"),
        ('name: etl\nimage: "\\ud800"\n', 2, 8, "DKE002", "not valid Unicode"),
        ('"\\udc00": 1\n', 1, 1, "DKE002", "not valid Unicode"),
        ('a: "\\ud800"\na: b\n', 1, 4, "DKE002", "not valid Unicode"),  # the first problem, printable
        ("a: " + "[" * 400 + "]" * 400 + "\n", 1, 104, "DKE003", "too deep"),
    ],
)
def test_bad_yaml_is_one_positioned_error(text, line, column, code, words):
    d = error_of(text)
    assert (d.line, d.column, d.code) == (line, column, code)
    assert words in d.message
    assert "\n" not in d.message
    d.message.encode("utf-8")  # printable: no lone surrogates


def test_billion_laughs_fails_fast_without_expanding():
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    # 9**9 nodes if expanded: an expansion would outlast the test's timeout, the count stops it first
    d = error_of("\n".join(levels) + "\n")
    assert d.code == "DKE004" and str(MAX_NODES) in d.message


def test_a_document_of_exactly_max_nodes_values_loads_one_more_does_not():
    # a mapping, its list and the list's items: MAX_NODES values in all, then one more
    exactly = "a: [" + ", ".join(["1"] * (MAX_NODES - 2)) + "]\n"
    assert len(load_text(exactly).data["a"]) == MAX_NODES - 2
    d = error_of(exactly.replace("[1,", "[1, 1,", 1))
    assert (d.code, d.file, d.line, d.column) == ("DKE004", "env.yaml", 1, 1)
    assert d.message == f"document too large: more than {MAX_NODES} values (alias expansion?)"


def test_small_aliases_are_fine():
    doc = load_text("base: &b {x: 1}\ncopy: *b\n")
    assert doc.data == {"base": {"x": 1}, "copy": {"x": 1}}
    doc.data["copy"]["x"] = 2  # plain copies: no shared structure downstream
    assert doc.data["base"]["x"] == 1


def test_scalars_become_plain_values():
    doc = load_text("d: 2024-01-01\nb: true\nf: 1.5\nn: null\nt: !custom 7\nh: 0x10\ny: yes\n")
    assert doc.data == {"d": "2024-01-01", "b": True, "f": 1.5, "n": None, "t": "7", "h": 16, "y": "yes"}
    assert type(doc.data["b"]) is bool


def test_multi_documents_skip_empty_ones():
    docs = parse_yaml("pods.yaml", "a: 1\n---\n---\nb: 2\n", multi=True)
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert docs[1].keys[("b",)] == Pos(4, 1)


def test_allow_empty_gives_none():
    (doc,) = parse_yaml("--set x", "", allow_empty=True)
    assert (doc.file, doc.data) == ("--set x", None)


def test_an_empty_file_is_one_error_in_full():
    d = error_of("# only a comment\n---\n")
    assert (d.code, d.line, d.column, d.message) == ("DKE005", 1, 1, "file is empty; expected a YAML mapping")


def test_a_control_character_on_a_later_line_is_counted_from_that_line_s_start():
    d = error_of("a: 1\nbb: 2\nccc: x\x07\n")
    assert (d.line, d.column, d.message) == (3, 7, "character U+0007 is not allowed in YAML; remove it")


def test_load_file_reads_relative_to_base_and_strips_bom(tmp_path):
    (tmp_path / "env.yaml").write_bytes(b"\xef\xbb\xbfname: etl\n")
    doc = load_file("env.yaml", tmp_path)[0]
    assert doc.data == {"name": "etl"}
    assert doc.keys[("name",)] == Pos(1, 1)
    assert doc.path == tmp_path / "env.yaml" and doc.file == "env.yaml"


def test_non_utf8_points_at_the_bad_byte(tmp_path):
    (tmp_path / "env.yaml").write_bytes("name: etl\nimage: fl\xf6w\n".encode("latin-1"))
    with pytest.raises(DkeError) as info:
        load_file("env.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert (d.code, d.line, d.column) == ("DKE002", 2, 10)
    assert "0xf6" in d.message and "UTF-8" in d.message


@pytest.mark.parametrize(
    "make, message",
    [
        ("missing", "file not found; check the path"),
        ("directory", "is a directory, expected a YAML file"),
        ("below a file", "cannot read file: Not a directory"),
    ],
)
def test_unreadable_files(tmp_path, make, message):
    name = "env.yaml"
    if make == "directory":
        (tmp_path / name).mkdir()
    if make == "below a file":
        (tmp_path / "env").write_text("name: a\n")
        name = "env/env.yaml"
    with pytest.raises(DkeError) as info:
        load_file(name, tmp_path)
    (d,) = info.value.diagnostics
    assert (d.severity, d.code, d.file, d.line, d.column, d.path, d.message) == (
        "error",
        "DKE001",
        name,
        1,
        1,
        "$",
        message,
    )
    assert (str(info.value), info.value.exit_code) == (message, 1)


@pytest.mark.parametrize(
    "text, found", [("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "a number")]
)
def test_root_must_be_a_mapping(tmp_path, text, found):
    (tmp_path / "env.yaml").write_text(text)
    with pytest.raises(DkeError) as info:
        load_mapping("env.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert d.code == "DKE006" and found in d.message


# --- bad input found by probing (issue 10) --------------------------------------------


@pytest.mark.parametrize(
    "text, line, column",
    [
        ("name: q\nflow: &f {<<: *f}\n", 2, 7),  # a mapping merging itself
        ("a: &a {b: 1, <<: [*a]}\n", 1, 4),  # itself, through a list of merges
    ],
)
def test_a_merge_key_that_refers_to_its_own_anchor_is_one_positioned_error(text, line, column):
    d = error_of(text)
    assert (d.code, d.line, d.column) == ("DKE003", line, column)
    assert "merges a mapping into itself" in d.message


def test_a_merge_cycle_through_a_nested_value_is_too_deep_not_a_crash():
    d = error_of("a: &a {b: {<<: *a}}\n")
    assert (d.code, d.line, d.column, d.message) == (
        "DKE003",
        1,
        11,
        f"YAML nesting is too deep (over {MAX_DEPTH} levels)",
    )


@pytest.mark.parametrize(
    "text, column, message",
    [
        # a cycle of two: the outer mapping reached again through the one it merges
        (
            "x: &a {<<: {<<: *a}}\n",
            4,
            "'<<' merges a mapping into itself (its own anchor); merge another mapping",
        ),
        ("a: {<<: 1}\n", 9, "'<<' merges mappings only"),
        ("c: {<<: {<<: 1}}\n", 14, "'<<' merges mappings only"),  # found while expanding another merge
    ],
)
def test_merge_key_mistakes_are_one_positioned_error(text, column, message):
    d = error_of(text)
    assert (d.file, d.code, d.line, d.column, d.message) == ("env.yaml", "DKE003", 1, column, message)


def test_merges_nest_up_to_the_limit():
    def chain(length):  # m<k> merges m<k-1>: expanding the last one nests `length` merges
        lines = ["m0: &m0 {a: 0}"] + [f"m{k}: &m{k} {{<<: *m{k - 1}}}" for k in range(1, length + 1)]
        return "\n".join(lines) + "\n"

    assert load_text(chain(MAX_DEPTH)).data[f"m{MAX_DEPTH}"] == {"a": 0}
    d = error_of(chain(MAX_DEPTH + 1))
    assert (d.code, d.line, d.column, d.message) == (
        "DKE003",
        1,  # the mapping the last merge would have expanded
        5,
        f"'<<' merges are nested too deep (over {MAX_DEPTH} levels)",
    )


def test_of_two_merged_mappings_the_first_listed_wins():
    doc = load_text("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc: {<<: [*a, *b]}\n")
    assert doc.data["c"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    "written, value",
    [
        ("1_000", 1000),
        ("1__000", 1000),  # Python's int() refuses a doubled underscore: dke removes them first
        ("007", 7),  # decimal with leading zeros: int(..., 0) refuses it
        ("0x_1F", 31),
        ("1__0.5", 10.5),
        ("+.inf", float("inf")),
        ("-.Inf", float("-inf")),
    ],
)
def test_numbers_as_ruamel_resolves_them(written, value):
    assert load_text(f"v: {written}\n").data["v"] == value


def test_a_surrogate_escape_is_shown_escaped_in_full():
    d = error_of('name: etl\nimage: "a\\ud800"\n')
    assert (d.line, d.column, d.message) == (
        2,
        8,
        "'a\\ud800' is not valid Unicode (a surrogate escape such as \\ud800)",
    )


def test_merges_of_other_mappings_still_work():
    doc = load_text("base: &b {x: 1}\nmid: &m {<<: *b, y: 2}\ntop: {<<: [*m], z: 3}\n")
    assert doc.data["top"] == {"z": 3, "y": 2, "x": 1}


@pytest.mark.parametrize(
    "text", ["name: a\n---\n", "name: a\n---\n---\n", "---\nname: a\n---\n# end\n", "---\n---\nname: a\n"]
)
def test_empty_documents_are_ignored_as_kubectl_does(text):
    assert load_text(text).data == {"name": "a"}


def test_a_second_document_with_content_is_still_an_error():
    assert "several" in error_of("name: a\n---\nname: b\n---\n").message


def test_values_written_as_nothing_are_recorded_as_empty():
    doc = load_text("env:\n  # A: b\nn: null\nt: ~\nflow:\n  parameters:\n")
    assert doc.data == {"env": None, "n": None, "t": None, "flow": {"parameters": None}}
    assert doc.empty == {("env",), ("flow", "parameters")}  # not the explicit nulls


def test_reading_stops_at_the_size_cap(tmp_path):
    from dke.environment.load import MAX_FILE_BYTES

    (tmp_path / "big.yaml").write_bytes(b"a: 1\n" + b"#" * MAX_FILE_BYTES)
    with pytest.raises(DkeError) as info:
        load_file("big.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert d.code == "DKE001" and "larger than" in d.message


def test_an_endless_device_is_refused_not_read_forever():
    with pytest.raises(DkeError) as info:
        load_file("/dev/zero")
    assert "larger than" in info.value.diagnostics[0].message


def test_a_duplicate_key_message_names_the_line_of_the_first():
    # lines 1-based, as in the file:line:col prefix; the first one nested and not on line 1
    d = error_of("name: etl\nflow:\n  entrypoint: a.py:f\n  parameters: {}\n  entrypoint: b.py:g\n")
    assert (d.line, d.column) == (5, 3)
    assert d.message == 'duplicate key "entrypoint" (first at line 3); each key may appear once'


def test_a_redefined_anchor_is_valid_yaml_and_prints_no_python_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = load_text("a: &x {v: 1}\nb: &x {v: 2}\nc: *x\n")
    assert doc.data["c"] == {"v": 2}  # the later definition, as YAML says
    assert [str(w.message) for w in caught] == []


# --- exact messages (mutation survivors: substring checks let a changed word through) ----------


@pytest.mark.parametrize(
    "text, found",
    [
        ("- a\n", "a list"),
        ("just text\n", "a string"),
        ("42\n", "a number"),
        ("1.5\n", "a number"),
        ("true\n", "a boolean"),
    ],
)
def test_the_top_level_message_names_what_was_found(tmp_path, text, found):
    (tmp_path / "env.yaml").write_text(text)
    with pytest.raises(DkeError) as info:
        load_mapping("env.yaml", tmp_path)
    assert info.value.diagnostics[0].message == f"top level must be a mapping of keys, found {found}"


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        # the parser's problem and, in parentheses, what it was doing
        (
            "a: [b, c}\n",
            1,
            9,
            "invalid YAML: expected ',' or ']', but got '}' (while parsing a flow sequence)",
        ),
        # no context: nothing in parentheses
        ("a: *x\n", 1, 4, "invalid YAML: found undefined alias 'x'"),
        # a tab just after the problem is not the problem
        (
            "a: b:\tc\n",
            1,
            5,
            "a ': ' inside a value (YAML reads it as a key); quote the value, e.g. key: \"a: b\"",
        ),
        # a tab at the problem, after a space: indentation with a tab
        ("a: b\n \tc: d\n", 2, 2, "tab character in indentation; YAML indents with spaces only"),
        # each recognised mistake's wording, whole
        (
            "secrets:\n  - a:b\n    c: d\n",
            2,
            6,
            "missing space after ':' in '- a:b': write '- a: b' (YAML needs a space between a key's ':' "
            "and its value)",
        ),
        (
            "secrets:\n  - a\n  -b:c\nname: x\n",
            3,
            3,
            "'-b:c' is neither `key: value` nor `- item` (YAML needs a space after the ':' or the '-')",
        ),
        (
            'name: "abc\nimage: x\n',
            1,
            7,
            'the " opened here is never closed; end the value with " on this line',
        ),
        ("env: {A: b\nimage: x\n", 1, 6, "the '{' opened here is not closed on its line; close it with '}'"),
        (
            "name: a\n- b\nimage: x\n",
            2,
            1,
            "a list item ('- ...') among the keys of a mapping: put the list under a key (`key:` then "
            "indented `- item` lines), or write the line as `key: value`",
        ),
        # the line above is the last one with content: not a blank line, nor a comment however indented
        (
            "flow:\n  entrypoint: x\n    # note\n\n parameters: 1\n",
            5,
            1,
            "indentation: this line is indented 1 space(s), the line above 2; keys of one mapping line up "
            "exactly",
        ),
    ],
)
def test_yaml_syntax_messages_in_full(text, line, column, message):
    d = error_of(text)
    assert (d.line, d.column, d.code, d.message) == (line, column, "DKE003", message)


# --- YAML syntax errors: reported where the user must fix them, with a hint ---------------


@pytest.mark.parametrize(
    "text, line, column, hint",
    [
        ("name: a\nmax_workers:2\nmin_workers: 1\n", 2, 12, "missing space after ':' in 'max_workers:2': "),
        ("name: a\nmax_workers:2\n", 2, 12, "write 'max_workers: 2'"),
        ("flow:\n  entrypoint:f.py:f\n  parameters: {}\n", 2, 13, "write 'entrypoint: f.py:f'"),
        ("secrets:\n  - a\n  -b:c\nname: x\n", 3, 3, "'-b:c' is neither `key: value` nor `- item`"),
        ("name: a\nflow:\n\tentrypoint: x\n", 3, 1, "tab character in indentation"),
        ("name: a\nflow:\n  \tentrypoint: x\n", 3, 3, "tab character in indentation"),
        ("name: a\nflow:\n\t\tentrypoint: x\n", 3, 1, "tab character in indentation"),  # the first tab
        # a tab between tokens is valid YAML that ruamel's wording parser refuses: not
        # "indentation", and the mistake it hid is reported
        ("name: a\t# the name\nmax_workers:2\n", 2, 12, "missing space after ':' in 'max_workers:2'"),
        ("name: a\t\n image: b\n", 2, 7, "a ': ' inside a value (YAML reads it as a key)"),
        ("name: a\t\n- b\n", 2, 1, "a list item ('- ...') among the keys of a mapping"),
        # ... or, where only that parser minds, the tab is named
        (
            "flow: {entrypoint: f.py:f}\t# x\n",
            1,
            27,
            "tab character after 'flow: {entrypoint: f.py:f}'; replace it",
        ),
        ('name: "abc\nimage: x\n', 1, 7, 'the " opened here is never closed'),
        ("name: 'abc\nimage: x\n", 1, 7, "the ' opened here is never closed"),
        (
            "secrets: [a, b\nimage: x\n",
            1,
            10,
            "the '[' opened here is not closed on its line; close it with ']'",
        ),
        ("env: {A: b\nimage: x\n", 1, 6, "the '{' opened here is not closed on its line; close it with '}'"),
        ("name: a\n- b\nimage: x\n", 2, 1, "a list item ('- ...') among the keys of a mapping"),
        ("flow:\n  entrypoint: x\n parameters: 1\n", 3, 1, "indented 1 space(s), the line above 2"),
        ("image: a: b\n", 1, 9, "quote the value"),
        ("name: a\n---\nname: b\n", 2, 1, "a second YAML document starts here"),
        ("name: a\n---\n---x\n", 2, 1, "a second YAML document starts here"),  # `---x` is its content
        # after `...` a document needs no `---`: its own line; a later `---` is another's
        ("name: a\n...\nname: b\n--- c\n", 3, 1, "a second YAML document starts here"),
        ("# c\nname: a\n\n--- # again\nname: b\n", 4, 1, "remove this '---'"),
    ],
)
def test_yaml_mistakes_are_reported_at_their_cause_with_a_hint(text, line, column, hint):
    d = error_of(text)
    assert (d.code, d.line, d.column) == ("DKE003", line, column), d
    assert hint in d.message


def test_a_url_or_an_entrypoint_is_not_taken_for_a_missing_space():
    d = error_of("secrets:\n  - http://x\nflow: {entrypoint: f.py:f\n")
    assert "missing space" not in d.message and d.line == 3


def test_environment_files_below_a_directory_are_found_sorted_skipping_hidden_and_dependencies(
    tmp_path, monkeypatch
):
    from dke.environment.load import find_environment_files

    for name in [
        "proj/b/environment.yml",
        "proj/a/deep/environment.yaml",
        "proj/environment.yaml",
        "proj/a/environment.yml",
        "proj/a/environment.yaml",
        "proj/a/other.yaml",  # not an environment file's name
        "proj/.git/environment.yaml",
        "proj/node_modules/x/environment.yaml",
        "proj/__pycache__/environment.yaml",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("name: a\n")
    (tmp_path / "proj" / "b" / "up").symlink_to(tmp_path / "proj")  # not followed: it would loop
    monkeypatch.chdir(tmp_path)
    assert find_environment_files("proj") == [  # a directory's own files first, then its subdirectories'
        "proj/environment.yaml",
        "proj/a/environment.yaml",
        "proj/a/environment.yml",
        "proj/a/deep/environment.yaml",
        "proj/b/environment.yml",
    ]
    assert find_environment_files("proj/a/deep/environment.yaml") == []  # a file is no directory


def test_a_path_without_a_position_takes_its_nearest_ancestor_s_else_the_first_line():
    doc = parse_yaml("f.yaml", "name: a\nflow:\n  entrypoint: x\n")[0]
    assert doc.pos(("flow", "parameters")) == doc.pos(("flow", "parameters", "n", 0)) == Pos(3, 3)
    assert doc.pos(("flow", "parameters"), prefer_key=True) == Pos(2, 1)  # the key `flow:`
    d = Document("--set #1 x=1", None).diagnostic(("flow", "parameters"), "DKE100", "m")  # nothing recorded
    assert (d.file, d.line, d.column, d.path) == ("--set #1 x=1", 1, 1, "$.flow.parameters")


def test_a_file_of_exactly_the_cap_is_read_one_byte_more_is_not(tmp_path):
    from dke.environment.load import MAX_FILE_BYTES

    (tmp_path / "cap.yaml").write_bytes(b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 5))
    assert load_file("cap.yaml", tmp_path)[0].data == {"a": 1}
    (tmp_path / "big.yaml").write_bytes(b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 4))
    with pytest.raises(DkeError) as info:
        load_file("big.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert (d.line, d.column, d.message) == (1, 1, "file is larger than 1024 KiB; is this the right file?")


def test_a_bad_byte_on_a_later_line_is_counted_from_that_line_s_start(tmp_path):
    (tmp_path / "env.yaml").write_bytes("a: 1\nb: 2\nc: fl\xf6w\n".encode("latin-1"))
    with pytest.raises(DkeError) as info:
        load_file("env.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert (d.line, d.column, d.message) == (3, 6, "not UTF-8 (byte 0xf6); save the file as UTF-8")


# --- nesting: the C parser never sees what could overflow its stack -------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 30_000, 400_000])
@pytest.mark.parametrize(
    "text, column",
    [
        (lambda n: "a: " + "[" * n + "x" + "]" * n, 4 + MAX_DEPTH),  # the list at the 101st level
        (lambda n: "- " * n + "x", 1 + 2 * (MAX_DEPTH + 1)),  # nested block lists on one line
    ],
)
def test_nesting_past_the_limit_is_one_error_at_the_same_node_however_deep(levels, text, column):
    # 30,000 and more nested lists crashed the process (a segfault in ruamel's C composer)
    d = error_of(text(levels) + "\n")
    message = f"YAML nesting is too deep (over {MAX_DEPTH} levels)"
    assert (d.code, d.line, d.column, d.message) == ("DKE003", 1, column, message)


def test_nesting_of_exactly_the_limit_loads_on_either_parser():
    deepest = "a: " + "[" * (MAX_DEPTH - 1) + "x" + "]" * (MAX_DEPTH - 1)
    # the same document with enough indicators in a comment to be sent to the pure parser
    for text in (deepest, deepest + " # " + "-" * 3000):
        data = load_text(text + "\n").data["a"]
        for _ in range(MAX_DEPTH - 2):
            (data,) = data
        assert data == ["x"]


def test_the_nesting_bound_counts_every_indicator_that_opens_a_level():
    from dke.environment.load import _nesting_bound

    assert _nesting_bound("a: [b, {c: d}]\n- ? e\n") == 6
    assert _nesting_bound("plain text") == 0


@pytest.mark.parametrize(
    "text, column, message",
    [
        ("[a]: 1\n", 1, "a list as a key; keys must be strings"),
        ("x: {? {a: 1} : 2}\n", 7, "a mapping as a key; keys must be strings"),
        ("null: a\n", 1, "key 'null' must be a string; quote it"),
    ],
)
def test_a_key_that_is_not_a_string_is_named_as_what_it_is(text, column, message):
    d = error_of(text)
    assert (d.code, d.line, d.column, d.message) == ("DKE004", 1, column, message)


def test_a_control_character_is_named_by_its_code_point_where_it_is():
    d = error_of("a: 1\nbb: x\x7fy\n")  # U+007F, not U+0000 or another's
    assert (d.code, d.line, d.column, d.message) == (
        "DKE003",
        2,
        6,
        "character U+007F is not allowed in YAML; remove it",
    )


def test_an_unmarked_yaml_error_is_one_line_at_the_first_position(monkeypatch):
    # none is known from ruamel for text input; a newer version's must still be one line
    from ruamel.yaml.error import YAMLError

    import dke.environment.load as load

    def refuse(text):
        raise YAMLError("something new \ud800\n  in <unicode string>")

    monkeypatch.setattr(load, "_compose_all", refuse)
    d = error_of("a: 1\n")
    assert (d.code, d.line, d.column, d.message) == ("DKE003", 1, 1, "invalid YAML: something new \\ud800")


# --- the "missing space" hint only where the space is the fix ---------------------------------


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        # `abc:def` is text of a folded scalar, fine there; the mistake is on the next line
        (
            "desc: >\n  abc:def\nimage: a: b\n",
            3,
            9,
            "a ': ' inside a value (YAML reads it as a key); quote the value, e.g. key: \"a: b\"",
        ),
        # ... or inside a quote that is never closed: the quote is the mistake
        ('k: "a\n  b:c\n  d\n', 1, 4, 'the " opened here is never closed; end the value with " on this line'),
        # far above the flow sequence the parser was in: not looked at
        (
            "desc: >\n  abc:def\nx: 1\ny: [a\nz: 2\n",
            4,
            4,
            "the '[' opened here is not closed on its line; close it with ']'",
        ),
        # on the first line, noticed on the second
        (
            "max_workers:2\nmin_workers: 1\n",
            1,
            12,
            "missing space after ':' in 'max_workers:2': write 'max_workers: 2' (YAML needs a space "
            "between a key's ':' and its value)",
        ),
        # the space is the fix even though another mistake follows
        (
            "name: a\nmax_workers:2\nmin_workers: 1\nimage: [x\n",
            2,
            12,
            "missing space after ':' in 'max_workers:2': write 'max_workers: 2' (YAML needs a space "
            "between a key's ':' and its value)",
        ),
        # text after a quoted or bracketed value, in a mapping or a list
        (
            'x: 1\ncommand: "python" -m x\n',
            2,
            19,
            'text after a value that ended with its closing \'"\': quote the whole value (e.g. "python -m x"), '
            "or start a comment with ' #'",
        ),
        (
            "a:\n  - [b] c\n",
            2,
            9,
            "text after a value that ended with its closing ']': quote the whole value (e.g. \"python -m x\"), "
            "or start a comment with ' #'",
        ),
        # on the first line, with no line above to compare indentation with
        (
            "&X a: *X c\n",  # an alias, not a closing quote or bracket, ends the value
            1,
            10,
            "invalid YAML: expected <block end>, but found '<scalar>' (while parsing a block mapping)",
        ),
        # a key among a list's items
        (
            "a:\n  - b\n  c: d\n",
            3,
            3,
            "this line is inside a list but is not an item ('- ...'): start it with '- ', or indent it as the "
            "keys above the list",
        ),
        # the key the parser started at, three lines before it gave up (blank lines and a comment)
        (
            "name: a\nmax_workers:2   \n\n\n# c\nmin_workers: 1\n",
            2,
            12,
            "missing space after ':' in 'max_workers:2': write 'max_workers: 2' (YAML needs a space "
            "between a key's ':' and its value)",
        ),
    ],
)
def test_a_key_value_without_space_is_blamed_only_where_a_space_gets_the_parser_past(
    text, line, column, message
):
    d = error_of(text)
    assert (d.code, d.line, d.column, d.message) == ("DKE003", line, column, message)


# --- what the parser reports without a position, or in a shape not seen yet --------------------


@pytest.mark.parametrize(
    "problem, message",
    [("  no mark here  ", "invalid YAML: no mark here"), (None, "invalid YAML: the parser stopped here")],
)
def test_a_marked_yaml_error_without_marks_is_reported_at_the_first_line(monkeypatch, problem, message):
    from ruamel.yaml.error import MarkedYAMLError

    import dke.environment.load as load

    def refuse(text):
        raise MarkedYAMLError(problem=problem)

    monkeypatch.setattr(load, "_compose_all", refuse)
    d = error_of("a: 1\n")
    assert (d.line, d.column, d.message) == (1, 1, message)


def test_read_text_strips_a_leading_byte_order_mark_only(tmp_path):
    # dke migrate edits the text by the parser's positions, which do not count the BOM
    from dke.environment.load import read_text

    (tmp_path / "env.yaml").write_bytes("\ufeffa: b\ufeff\n".encode())
    assert read_text("env.yaml", tmp_path / "env.yaml") == "a: b\ufeff\n"


@pytest.mark.parametrize(
    "content, line, column, byte",
    [
        (
            "name: caf\u00e9 \xff\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff"),
            1,
            12,
            "ff",
        ),  # é is one column
        (b"\xef\xbb\xbfa: \xfe\n", 1, 4, "fe"),  # the BOM is not a column
    ],
)
def test_a_bad_byte_s_column_counts_characters_not_bytes(tmp_path, content, line, column, byte):
    (tmp_path / "env.yaml").write_bytes(content)
    with pytest.raises(DkeError) as info:
        load_file("env.yaml", tmp_path)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.column, d.message) == (
        "env.yaml",
        line,
        column,
        f"not UTF-8 (byte 0x{byte}); save the file as UTF-8",
    )


def test_every_read_error_names_the_file_as_given(tmp_path):
    from dke.environment.load import MAX_FILE_BYTES

    (tmp_path / "big.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    (tmp_path / "list.yaml").write_text("# the list\n\n  - a\n")
    for name, code in (("big.yaml", "DKE001"), ("list.yaml", "DKE006")):
        with pytest.raises(DkeError) as info:
            load_mapping(name, tmp_path)
        (d,) = info.value.diagnostics
        assert (d.file, d.code) == (name, code)
    assert (d.line, d.column, d.message) == (3, 3, "top level must be a mapping of keys, found a list")


def test_load_file_holds_one_document_and_refuses_an_empty_file_unless_asked(tmp_path):
    (tmp_path / "two.yaml").write_text("a: 1\n---\nb: 2\n")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(DkeError) as info:
        load_file("two.yaml", tmp_path)
    assert info.value.diagnostics[0].line == 2
    assert [d.data for d in load_file("two.yaml", tmp_path, multi=True)] == [{"a": 1}, {"b": 2}]
    with pytest.raises(DkeError) as info:
        load_file("empty.yaml", tmp_path)
    assert info.value.diagnostics[0].code == "DKE005"
    with pytest.raises(DkeError) as info:
        load_mapping("empty.yaml", tmp_path)
    assert info.value.diagnostics[0].code == "DKE005"
    assert load_mapping("empty.yaml", tmp_path, allow_empty=True).data == {}


def test_a_mapping_s_own_keys_win_over_merged_ones_and_keep_their_positions():
    doc = load_text("base: &b {x: 1, y: 1}\ntop:\n  <<: *b\n  x: 2\n")
    assert doc.data["top"] == {"x": 2, "y": 1}
    assert doc.keys[("top", "x")] == Pos(4, 3)
