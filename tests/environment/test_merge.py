"""Strategic merge of spec files over dke's default pods (dke.environment.merge.strategic_merge)."""

import copy

from dke.environment.merge import strategic_merge
from dke.objects.provenance import Origin, Traced, strip, value_of

DEFAULT = {
    "containers": [
        {
            "name": "worker",
            "image": "flow:1",
            "args": ["dask", "worker"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"name": "http-dashboard", "containerPort": 8788}],
            "livenessProbe": {"httpGet": {"port": 8788}},
        }
    ],
    "imagePullSecrets": [{"name": "registry"}],
    "nodeSelector": {"pool": "default", "zone": "a"},
}


def test_containers_merge_by_name_and_keep_defaults():
    patch = {"containers": [{"name": "worker", "resources": {"limits": {"cpu": "2"}}}]}
    out = strategic_merge(DEFAULT, patch)
    (worker,) = out["containers"]
    assert worker["resources"] == {"limits": {"cpu": "2"}}
    assert worker["args"] == ["dask", "worker"] and worker["image"] == "flow:1"


def test_new_named_items_are_appended_in_patch_order():
    patch = {"containers": [{"name": "sidecar", "args": ["sleep"]}, {"name": "worker", "args": ["x"]}]}
    out = strategic_merge(DEFAULT, patch)
    assert [c["name"] for c in out["containers"]] == ["worker", "sidecar"]
    assert out["containers"][0]["args"] == ["x"]  # args: not merged by name, replaced


def test_env_merges_by_name_patch_value_wins():
    patch = {
        "containers": [
            {"name": "worker", "env": [{"name": "B", "value": "patched"}, {"name": "C", "value": "3"}]}
        ]
    }
    env = strategic_merge(DEFAULT, patch)["containers"][0]["env"]
    assert env == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "patched"},
        {"name": "C", "value": "3"},
    ]


def test_ports_volumes_volume_mounts_and_pull_secrets_merge_by_name():
    base = {
        "volumes": [{"name": "v1", "emptyDir": {}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "v1", "mountPath": "/a"}]}],
        **DEFAULT,
    }
    base["containers"] = [{**DEFAULT["containers"][0], "volumeMounts": [{"name": "v1", "mountPath": "/a"}]}]
    patch = {
        "volumes": [{"name": "v2", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "other"}],
        "containers": [
            {
                "name": "worker",
                "ports": [{"name": "http-dashboard", "containerPort": 9999}],
                "volumeMounts": [{"name": "v2", "mountPath": "/b"}],
            }
        ],
    }
    out = strategic_merge(base, patch)
    assert [v["name"] for v in out["volumes"]] == ["v1", "v2"]
    assert out["imagePullSecrets"] == [{"name": "registry"}, {"name": "other"}]
    assert out["containers"][0]["ports"] == [{"name": "http-dashboard", "containerPort": 9999}]
    assert [m["mountPath"] for m in out["containers"][0]["volumeMounts"]] == ["/a", "/b"]


def test_other_lists_are_replaced_and_maps_merged():
    base = {**DEFAULT, "tolerations": [{"key": "a", "operator": "Exists"}]}
    patch = {"tolerations": [{"key": "b", "operator": "Exists"}], "nodeSelector": {"pool": "big"}}
    out = strategic_merge(base, patch)
    assert out["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert out["nodeSelector"] == {"pool": "big", "zone": "a"}


def test_null_deletes_a_key():
    patch = {"nodeSelector": {"zone": None}, "containers": [{"name": "worker", "livenessProbe": None}]}
    out = strategic_merge(DEFAULT, patch)
    assert out["nodeSelector"] == {"pool": "default"}
    assert "livenessProbe" not in out["containers"][0]


def test_patch_delete_directive_removes_a_named_item():
    patch = {
        "containers": [{"name": "worker", "env": [{"name": "A", "$patch": "delete"}]}],
        "imagePullSecrets": [
            {"name": "registry", "$patch": "delete"},
            {"name": "absent", "$patch": "delete"},
        ],
    }
    out = strategic_merge(DEFAULT, patch)
    assert out["containers"][0]["env"] == [{"name": "B", "value": "2"}]
    assert out["imagePullSecrets"] == []


def test_patch_delete_directive_removes_a_map_whatever_it_replaces():
    base = {"affinity": {"nodeAffinity": {"x": 1}}, "nodeSelector": {"a": "b"}, "hostname": "h", "n": 1}
    patch = {
        "affinity": {"$patch": "delete"},
        "hostname": {"$patch": "delete", "x": 2},
        "new": {"$patch": "delete"},
    }
    assert strategic_merge(base, patch) == {"nodeSelector": {"a": "b"}, "n": 1}
    nested = {"containers": [{"name": "worker", "securityContext": {"$patch": "delete"}}]}
    assert strategic_merge({"containers": [{"name": "worker", "securityContext": {"a": 1}}]}, nested) == {
        "containers": [{"name": "worker"}]
    }
    assert strategic_merge(base, {"$patch": "delete"}) is None
    assert strategic_merge("text", {"$patch": "delete", "a": 1}) is None


def test_lists_given_with_their_field_name_merge_by_name_and_other_items_are_appended():
    base = [{"name": "a", "x": 1}]
    assert strategic_merge(base, [{"name": "a", "y": 2}, "loose"], "containers") == [
        {"name": "a", "x": 1, "y": 2},
        "loose",
    ]
    assert strategic_merge(base, [{"name": "a", "y": 2}], "args") == [{"name": "a", "y": 2}]  # replaced


def test_patch_replace_directive_replaces_a_map_or_a_list():
    patch = {
        "nodeSelector": {"$patch": "replace", "only": "this"},
        "containers": [{"name": "worker", "env": [{"$patch": "replace"}, {"name": "Z", "value": "9"}]}],
    }
    out = strategic_merge(DEFAULT, patch)
    assert out["nodeSelector"] == {"only": "this"}
    assert out["containers"][0]["env"] == [{"name": "Z", "value": "9"}]


def test_unnamed_items_are_appended_and_inputs_never_modified():
    base = copy.deepcopy(DEFAULT)
    patch = {"containers": [{"image": "flow:1", "args": ["a"]}]}
    frozen = copy.deepcopy(patch)
    out = strategic_merge(base, patch)
    assert len(out["containers"]) == 2
    out["containers"][0]["env"].append({"name": "X"})
    out["nodeSelector"]["new"] = "1"
    assert base == DEFAULT and patch == frozen


def test_provenance_follows_the_winning_side():
    """Leaves wrapped with their origin keep it through the merge (what --explain shows)."""
    dke = Origin("dke")
    spec = Origin("spec", "$.containers[0].args", "worker.yaml", 4, 7)

    def wrap(node, origin):
        if isinstance(node, dict):
            return {k: wrap(v, origin) for k, v in node.items()}
        if isinstance(node, list):
            return [wrap(v, origin) for v in node]
        return Traced(node, origin)

    base = wrap(DEFAULT, dke)
    patch = wrap(
        {"containers": [{"name": "worker", "args": ["custom"], "env": [{"name": "A", "value": "x"}]}]}, spec
    )
    plain, origins = strip(strategic_merge(base, patch, None, value_of))
    assert plain["containers"][0]["args"] == ["custom"]
    assert origins[("containers", 0, "args", 0)] == spec
    assert origins[("containers", 0, "env", 0, "value")] == spec
    assert origins[("containers", 0, "env", 1, "value")] == dke  # B kept from the default
    assert origins[("containers", 0, "image")] == dke
    assert len(plain["containers"]) == 1  # names compared by value, not by wrapper


def test_directives_in_patch_data_that_merges_into_nothing_are_applied_on_wrapped_leaves():
    """A spec file's values are wrapped with their origin: `$patch` is read through them
    wherever the patch lands, also where the default has nothing to merge it into."""
    spec = Origin("spec", "$", "worker.yaml", 1, 1)

    def wrap(node):
        if isinstance(node, dict):
            return {k: wrap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [wrap(v) for v in node]
        return node if node is None else Traced(node, spec)

    patch = {
        "nodeSelector": {"$patch": "replace", "only": "this", "gone": {"$patch": "delete"}},
        "affinity": {"nodeAffinity": {"$patch": "delete"}, "podAffinity": {"x": None, "y": 1}},
        "initContainers": [{"name": "init", "$patch": "delete"}, {"name": "keep", "image": "x"}],
        "containers": [
            {"name": "side", "env": [{"name": "X", "$patch": "delete"}, {"name": "Y", "value": "1"}]}
        ],
        "imagePullSecrets": [{"$patch": "replace"}, {"name": "r2"}, {"name": "old", "$patch": "delete"}],
    }
    plain, _ = strip(strategic_merge(DEFAULT, wrap(patch), None, value_of))
    assert plain == {
        "containers": [DEFAULT["containers"][0], {"name": "side", "env": [{"name": "Y", "value": "1"}]}],
        "imagePullSecrets": [{"name": "r2"}],
        "nodeSelector": {"only": "this"},
        "affinity": {"podAffinity": {"y": 1}},
        "initContainers": [{"name": "keep", "image": "x"}],
    }


def test_a_scalar_replaces_a_map_and_null_for_an_absent_key_changes_nothing():
    base = {"a": {"b": 1}, "c": 1, "f": 1}
    patch = {"$patch": "merge", "a": "x", "c": None, "d": None, "e": 2}
    assert strategic_merge(base, patch) == {"a": "x", "f": 1, "e": 2}


# --- layering (Helm's rules) and --set: bad input found by probing -----------------------

import pytest  # noqa: E402

from dke.diagnostics import DkeError  # noqa: E402
from dke.environment.load import MAX_DEPTH, parse_yaml  # noqa: E402
from dke.environment.merge import layer, parse_set  # noqa: E402


def test_a_set_path_hundreds_of_levels_deep_is_a_usage_error():
    with pytest.raises(DkeError) as info:
        parse_set(0, ".".join(["a"] * 500) + "=1")
    assert info.value.exit_code == 2 and "500 levels" in str(info.value) and "\n" not in str(info.value)


def test_a_deep_set_path_plus_a_deep_value_is_a_usage_error():
    key = ".".join(["a"] * (MAX_DEPTH - 5))
    with pytest.raises(DkeError) as info:
        parse_set(0, f"{key}=" + "[" * 10 + "]" * 10)
    assert info.value.exit_code == 2 and "nested more than" in str(info.value)
    assert parse_set(0, f"{key}=[[1]]").data  # within the limit


BASE = "name: etl\nimage: x:1\nflow:\n  entrypoint: f.py:f\n  parameters:\nenv:\n  # A: b\nsecrets:\nnamespace:\n"


def test_empty_collections_in_the_base_are_empty_not_null():
    merged = layer([parse_yaml("env.yaml", BASE)[0]])
    assert (
        merged.data["env"] == {} and merged.data["secrets"] == [] and merged.data["flow"]["parameters"] == {}
    )
    assert merged.data["namespace"] is None  # a string or null: stays null


def test_empty_values_in_overlays_still_delete():
    base = parse_yaml("env.yaml", "name: etl\nimage: x:1\nflow: {entrypoint: f.py:f}\nenv: {A: b}\n")[0]
    overlay = parse_yaml("o.yaml", "env:\n  # nothing\n")[0]
    merged = layer([base, overlay])
    assert "env" not in merged.data and ("env",) in merged.deleted
    assert "env" not in layer([base, parse_set(0, "env=null")]).data


def test_replace_on_a_named_item_replaces_that_item_not_the_list():
    from dke.environment.merge import strategic_merge

    base = {"containers": [{"name": "worker", "args": ["a"], "image": "x"}, {"name": "side", "image": "y"}]}
    patch = {"containers": [{"name": "worker", "$patch": "replace", "image": "z"}]}
    assert strategic_merge(base, patch) == {
        "containers": [{"name": "worker", "image": "z"}, {"name": "side", "image": "y"}]
    }
    alone = {"containers": [{"$patch": "replace"}, {"name": "only"}]}
    assert strategic_merge(base, alone) == {"containers": [{"name": "only"}]}


# --- --set / --set-string: Helm's strvals syntax (comma lists, indexes, escapes) ---------

from dke.environment.merge import SetString, set_text  # noqa: E402


def applied(base_yaml: str, *flags: str) -> dict:
    base = parse_yaml("environment.yaml", base_yaml)[0]
    plain = [f for f in flags if not isinstance(f, SetString)]
    strings = [f for f in flags if isinstance(f, SetString)]
    docs = [parse_set(i, f) for i, f in enumerate(plain)] + [parse_set(i, f) for i, f in enumerate(strings)]
    return layer([base, *docs]).data


def usage_error(base_yaml: str, *flags: str) -> str:
    with pytest.raises(DkeError) as info:
        applied(base_yaml, *flags)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    "flag, data",
    [
        ("a=1,b=x", {"a": 1, "b": "x"}),
        ("a.b=1,a.c=2", {"a": {"b": 1, "c": 2}}),
        ("a={x,2,true}", {"a": ["x", 2, True]}),  # Helm's list syntax
        ("a={}", {"a": []}),
        ("a=x\\,y,b=c\\\\d", {"a": "x,y", "b": "c\\d"}),  # \ escapes the next character
        ("a\\.b\\=c=1", {"a.b=c": 1}),
        ("a=[1, 2],b='x,y'", {"a": [1, 2], "b": "x,y"}),  # YAML flow list and quoted scalar keep commas
        ("a[0].b=1,a[1]=x", {"a": [{"b": 1}, "x"]}),
        ("a[1]=y,a[0]=x", {"a": ["x", "y"]}),  # indexes in any order, as Helm
        ("a[0][1]=2,a[0][0]=1", {"a": [[1, 2]]}),
        ("a=,b=1.5,c=0x10,d=~", {"a": "", "b": 1.5, "c": 16}),  # YAML 1.2 scalars; ~ is null: deletes
        ("a=1,", {"a": 1}),  # a trailing comma, as Helm
        ("a=x: y", {"a": "x: y"}),  # a plain value is one scalar, never a mapping
    ],
)
def test_set_syntax(flag, data):
    assert applied("q: 0\n", flag) == {"q": 0, **data}


def test_set_string_keeps_the_text_and_comes_after_every_set():
    assert applied("q: 0\n", SetString("a=1,b=true,c={1,x},d= 007"), "a=2") == {
        "q": 0,
        "a": "1",
        "b": "true",
        "c": ["1", "x"],
        "d": " 007",
    }


def test_an_index_changes_one_item_of_the_files_list():
    base = "secrets: [one, two]\nenv: {A: b}\nparams: [{x: 1, y: 2}]\n"
    assert applied(base, "secrets[1]=zwei", "params[0].y=3,secrets[2]=drei") == {
        "secrets": ["one", "zwei", "drei"],
        "env": {"A": "b"},
        "params": [{"x": 1, "y": 3}],
    }
    assert applied(base, "secrets=null")["env"] == {"A": "b"} and "secrets" not in applied(
        base, "secrets=null"
    )


def test_an_index_past_the_end_is_refused_not_padded_with_null():
    message = usage_error("secrets: [one]\n", "secrets[3]=x")
    assert message.startswith("--set #1 'secrets[3]=x' col 9: secrets[3] is past the end")
    assert "secrets[1] unset" in message
    assert applied("secrets: [one]\n", "secrets[2]=x", "secrets[1]=y")["secrets"] == ["one", "y", "x"]


@pytest.mark.parametrize(
    "flag, start",
    [
        ("max_workers", "--set #1 max_workers col 12: max_workers has no value"),
        ("a,b=1", "--set #1 a,b=1 col 2: a has no value"),
        ("a..b=1", "--set #1 a..b=1 col 3: empty key name after a"),
        ("=1", "--set #1 =1 col 1: empty key name"),
        ("a[x]=1", "--set #1 'a[x]=1' col 3: list index 'x' is not a number"),
        ("a[-1]=1", "--set #1 'a[-1]=1' col 3: list index '-1'"),
        ("a[0]b=1", "--set #1 'a[0]b=1' col 5: expected '.', '[' or '=' after ']'"),
        ("a[70000]=1", "--set #1 'a[70000]=1' col 3: list index 70000 is larger"),
        ("a={x,y", "--set #1 'a={x,y' col 3: '{' without '}'"),
        ("a=[1", "--set #1 'a=[1' col 3: value is not valid YAML"),
        ("a=[1]x", "--set #1 'a=[1]x' col 6: expected ',' or the end"),
        ("a=x\\", "--set #1 'a=x\\' col 4: a '\\' at the end escapes nothing"),
        ("q.r=1", "--set #1 q.r=1 col 1: q is a number 0 (from environment.yaml), not a mapping"),
        ("q[0]=1", "--set #1 'q[0]=1' col 1: q is a number 0 (from environment.yaml), not a list"),
    ],
)
def test_bad_set_names_the_flag_and_the_column(flag, start):
    assert usage_error("q: 0\n", "ok=1", flag.replace("#1", "#2")).startswith(start.replace("#1", "#2"))


def test_values_from_a_flag_point_at_their_column_in_that_flag():
    merged = layer([parse_yaml("e.yaml", "q: 0\n")[0], parse_set(1, "a=1,b.c[0]=xyz")])
    d = merged.diagnostic(("b", "c", 0), "DKE102", "m")
    assert (d.file, d.line, d.column) == (
        "--set #2 'b.c[0]=xyz' col"[:0] + "--set #2 'a=1,b.c[0]=xyz'",
        1,
        12,
    )
    assert merged.diagnostic(("a",), "DKE102", "m").column == 3


def test_set_text_writes_what_parses_back():
    data = {"a.b": {"c": [1, {"d": "x,y"}, [None, True]]}, "e": " s", "f": "1", "g": "{x}", "h": 1.5}
    flags = set_text((), data)
    assert applied("q: 0\n", ",".join(flags)) == {"q": 0, **data}
    strings = set_text((), {"a": "1", "b": ["x", "{y"]}, string=True)
    assert applied("q: 0\n", SetString(",".join(strings))) == {"q": 0, "a": "1", "b": ["x", "{y"]}


# --- empty collections in the base, by the schema's type (mutation survivors) ----------------


def test_an_empty_mapping_inside_an_optional_section_is_a_mapping():
    # deployment is "Deployment or null": the schema's non-null branch says work_pool is a mapping
    text = BASE + "deployment:\n  name: nightly\n  work_pool:\n    # name: pool\n"
    merged = layer([parse_yaml("env.yaml", text)[0]])
    assert merged.data["deployment"] == {"name": "nightly", "work_pool": {}}


def test_empty_values_where_the_schema_says_no_collection_stay_null():
    # an env value (a string), a key the schema does not know: nothing to fill in, no crash
    text = BASE.replace("env:\n  # A: b\n", "env:\n  A:\n") + "unknown:\n"
    merged = layer([parse_yaml("env.yaml", text)[0]])
    assert merged.data["env"] == {"A": None} and merged.data["unknown"] is None


# --- --set: the form, escaped dots, the depth limit's boundary, positions (mutation survivors) --


def test_an_escaped_dot_is_part_of_the_key():
    doc = parse_set(0, "labels.app\\.kubernetes\\.io/name=etl")
    assert doc.data == {"labels": {"app.kubernetes.io/name": "etl"}}


@pytest.mark.parametrize(
    "levels, value",
    [(MAX_DEPTH, "1"), (MAX_DEPTH - 1, "{a: 1}"), (MAX_DEPTH - 2, "[[1]]"), (MAX_DEPTH - 1, "[]")],
    ids=["scalar", "mapping", "lists", "empty-list"],
)
def test_the_depth_limit_counts_key_levels_plus_value_levels(levels, value):
    key = ".".join(["a"] * levels)
    assert parse_set(0, f"{key}={value}").data  # exactly at the limit
    with pytest.raises(DkeError) as info:
        parse_set(0, f"b.{key}={value}")  # one level more
    assert info.value.exit_code == 2


# --- the --set parser (Helm's strvals): every message in full, values, set_text (mutation, second pass) ---


@pytest.mark.parametrize(
    "flag, message",
    [
        ("", "'' col 1: expected KEY.PATH=VALUE, e.g. --set max_workers=4"),
        (",", ", col 1: empty key name; write KEY.PATH=VALUE"),
        ("a.=1", "a.=1 col 3: empty key name after a; write KEY.PATH=VALUE"),
        ("a", "a col 2: a has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4"),
        (
            "a.b[0].c,x=1",
            "'a.b[0].c,x=1' col 9: a.b[0].c has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4",
        ),
        ("a[0", "'a[0' col 3: '[' without ']'; a list index is written [0]"),
        # the flag ends after `]`: what is missing is the value, as for a key name
        ("a[0]", "'a[0]' col 5: a[0] has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4"),
        (
            "a[0],b=1",
            "'a[0],b=1' col 5: a[0] has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4",
        ),
        (
            "a.b[0][1]",
            "'a.b[0][1]' col 10: a.b[0][1] has no value; write KEY.PATH=VALUE, e.g. --set max_workers=4",
        ),
        ("a[1a]=1", "'a[1a]=1' col 3: list index '1a' is not a number >= 0"),
        ("a[\u0663]=1", "'a[\u0663]=1' col 3: list index '\u0663' is not a number >= 0"),  # an Arabic-Indic 3
        ("a[65537]=1", "'a[65537]=1' col 3: list index 65537 is larger than 65536"),
        ("a={x", "'a={x' col 3: '{' without '}'; a list is written {a,b}"),
        ("a={x}y", "'a={x}y' col 6: expected ',' or the end after the closing }"),
        ("a=[1]]", "'a=[1]]' col 6: expected ',' or the end after the closing ]"),
        ('a="x"y', "'a=\"x\"y' col 6: expected ',' or the end after the closing quote"),
        (
            "a=[1",
            "'a=[1' col 3: value is not valid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence)",
        ),
        ("k=x\\", "'k=x\\' col 4: a '\\' at the end escapes nothing; write '\\\\' for a backslash"),
    ],
)
def test_each_set_syntax_error_in_full(flag, message):
    with pytest.raises(DkeError) as info:
        parse_set(2, flag)
    assert (str(info.value), info.value.exit_code) == (f"--set #3 {message}", 2)


@pytest.mark.parametrize(
    "base, flag, found",
    [
        ("q: 0\n", "q.r=1", "col 1: q is a number 0 (from environment.yaml), not a mapping"),
        ("q: abc\n", "q.r=1", "col 1: q is a string 'abc' (from environment.yaml), not a mapping"),
        ("q: true\n", "q[0]=1", "col 1: q is a boolean True (from environment.yaml), not a list"),
        ("q: [1]\n", "q.r=1", "col 1: q is a list (from environment.yaml), not a mapping"),
        ("q: {a: 1}\n", "q[0]=1", "col 1: q is a mapping (from environment.yaml), not a list"),
        ("q: {a: [1]}\n", "q.a.b=1", "col 3: q.a is a list (from environment.yaml), not a mapping"),
    ],
)
def test_a_set_through_a_value_of_another_type_names_it_and_its_file(base, flag, found):
    import shlex

    shown = found.split(": ", 1)[1].split(" is ")[0]
    assert usage_error(base, flag) == f"--set #1 {shlex.quote(flag)} {found}; set {shown}=... to replace it"


def test_the_first_unset_slot_is_named_at_its_index():
    tail = (
        "is past the end of the list and leaves {} unset (Helm would make it null, which no dke list takes): "
        "set the items before it too, or the whole list, e.g. KEY=[a, b]"
    )
    assert usage_error("q: 0\n", "a[2]=1") == "--set #1 'a[2]=1' col 3: a[2] " + tail.format("a[0]")
    assert usage_error("q: 0\n", "a[0][2]=1") == "--set #1 'a[0][2]=1' col 6: a[0][2] " + tail.format(
        "a[0][0]"
    )
    # the lowest slot of the first flag; a later assignment in the flag fills a slot
    assert usage_error("q: 0\n", "b[1]=1", "a[1]=1").startswith("--set #1 'b[1]=1' col 3: b[1] ")
    assert usage_error("q: 0\n", "a[1]=1,a[3]=2") == "--set #1 'a[1]=1,a[3]=2' col 3: a[1] " + tail.format(
        "a[0]"
    )
    assert usage_error("q: 0\n", "a[2].b=1,a[0]=x").endswith("leaves a[1] " + tail.split("} ", 1)[1])
    assert applied("q: 0\n", "a[2]=1,a[1]=2,a[0]=3") == {"q": 0, "a": [3, 2, 1]}


def test_set_values_quotes_lists_and_the_largest_index():
    assert parse_set(0, "a='it''s',b=\"q\\\"r\\\\\"").data == {"a": "it's", "b": 'q"r\\'}
    assert parse_set(0, "a=[[1,'x]'],{b: c}],c=d").data == {"a": [[1, "x]"], {"b": "c"}], "c": "d"}
    assert parse_set(0, "a={ 1 , y },b=  spaced ,c={,}").data == {"a": [1, "y"], "b": "spaced", "c": ["", ""]}
    assert parse_set(0, "a={Xy,X}").data == {"a": ["Xy", "X"]}
    assert parse_set(0, "\\=a=1").data == {"=a": 1}
    data = parse_set(0, "a=yes,b=0o10,c=.inf,d=1e3,e=010,g=True,h=0x1F").data  # YAML 1.2, as the file
    assert data == {"a": "yes", "b": 8, "c": float("inf"), "d": 1000.0, "e": 10, "g": True, "h": 31}
    assert len(parse_set(0, "a[65536]=1").data["a"]) == 65537  # the largest index Helm takes
    assert parse_set(0, SetString("a={ 1 ,y},b=[x]")).data == {"a": [" 1 ", "y"], "b": "[x]"}


def test_a_long_flag_is_shortened_in_its_label():
    from dke.environment.merge import set_label

    assert set_label(0, "a=" + "x" * 58) == "--set #1 a=" + "x" * 58  # 60 characters: whole
    assert set_label(0, "a=" + "x" * 59) == "--set #1 a=" + "x" * 55 + "..."
    assert set_label(4, SetString("a b=1")) == "--set-string #5 'a b=1'"


@pytest.mark.parametrize(
    "value, plain, string",
    [
        (None, "null", "None"),
        (True, "true", "True"),
        (False, "false", "False"),
        (3, "3", "3"),
        (1.5, "1.5", "1.5"),
        (float("nan"), ".nan", "nan"),
        (float("inf"), ".inf", "inf"),
        (float("-inf"), "-.inf", "-inf"),
        ("", '""', ""),
        (" x", '" x"', " x"),
        ("[x", '"[x"', "[x"),
        ("{x", '"{x"', "\\{x"),
        ("'x", '"\'x"', "'x"),
        ("1", '"1"', "1"),
        ("true", '"true"', "true"),
        ("x,y", "x\\,y", "x\\,y"),
        ("a\\b", "a\\\\b", "a\\\\b"),
        ("\u00e9", "\u00e9", "\u00e9"),
        (" \u00e9", '" \u00e9"', " \u00e9"),  # quoted as JSON, but not as \\u escapes
        ("Xy,X", "Xy\\,X", "Xy\\,X"),  # only the characters that need it are escaped
        ("{X", '"{X"', "\\{X"),
        ([], "[]", "{}"),
    ],
)
def test_set_text_writes_each_kind_of_value(value, plain, string):
    assert set_text(("a", 0, "b.c"), value) == [f"a[0].b\\.c={plain}"]
    assert set_text(("k",), value, string=True) == [f"k={string}"]


def test_set_text_escapes_key_characters_and_skips_empty_mappings():
    assert set_text((), {"a.b=c[d],e\\": 1, "f": {}, "g": {"h": [{"i": 2}]}, "X": 3}) == [
        "a\\.b\\=c\\[d]\\,e\\\\=1",
        "g.h[0].i=2",
        "X=3",
    ]
    assert applied("q: 0\n", "a\\.b\\=c\\[d]\\,e\\\\=1") == {"q": 0, "a.b=c[d],e\\": 1}


def test_a_quoted_or_bracketed_value_ends_at_its_own_closing_character():
    # escapes right before the closing quote, and letters inside brackets, do not move the end
    assert parse_set(0, "a='x''',b=1").data == {"a": "x'", "b": 1}
    assert parse_set(0, 'a="x\\\\",b=1').data == {"a": "x\\", "b": 1}
    assert parse_set(0, "a=[X, {Y: Z}],b=1").data == {"a": ["X", {"Y": "Z"}], "b": 1}


def test_a_later_assignment_of_the_whole_list_fills_the_slots_an_index_left():
    assert applied("q: 0\n", "a[0][1]=x,a[0]=[1, 2]") == {"q": 0, "a": [[1, 2]]}
    assert applied("q: 0\n", "a[0][1]=x", "a[0]={y,z}") == {"q": 0, "a": [["y", "z"]]}


def test_layering_leaves_the_flags_it_applies_unchanged():
    base = parse_yaml("environment.yaml", "q: 0\n")[0]
    first, second = parse_set(0, "a=[{b: 1}]"), parse_set(1, "a[0].b=2")
    assert layer([base, first, second]).data == {"q": 0, "a": [{"b": 2}]}
    assert layer([base, first]).data == {"q": 0, "a": [{"b": 1}]}  # the same flag, layered again


@pytest.mark.parametrize("levels, value", [(MAX_DEPTH - 3, "[{a: {b: 1}}]"), (MAX_DEPTH - 2, "[{}]")])
def test_mappings_inside_a_set_list_count_towards_the_depth_limit(levels, value):
    key = ".".join(["a"] * levels)
    assert parse_set(0, f"{key}={value}").data  # exactly at the limit
    with pytest.raises(DkeError) as info:
        parse_set(0, f"b.{key}={value}")
    assert str(info.value).endswith(f"nested more than {MAX_DEPTH} levels deep (key path and value)")


def test_a_flag_on_its_own_leaves_unset_slots_null():
    assert parse_set(0, "a[2]=x,b[0][1]=y").data == {"a": [None, None, "x"], "b": [[None, "y"]]}


def test_the_key_path_s_edge_cases():
    assert parse_set(0, "X.Y=1,a=").data == {"X": {"Y": 1}, "a": ""}  # a value may be empty at the end too
    assert parse_set(0, "a=Xy,b=x\\,").data == {"a": "Xy", "b": "x,"}
    with pytest.raises(DkeError) as info:
        parse_set(0, "a[0].=1")
    assert str(info.value) == "--set #1 'a[0].=1' col 6: empty key name after a[0]; write KEY.PATH=VALUE"


def test_a_problem_inside_a_set_list_or_mapping_points_at_the_value():
    merged = layer([parse_yaml("e.yaml", "q: 0\n")[0], parse_set(0, "q=1,a=[x, {b: y}]")])
    for path in (("a", 0), ("a", 1, "b")):
        d = merged.diagnostic(path, "DKE102", "m")
        assert (d.file, d.line, d.column) == ("--set #1 'q=1,a=[x, {b: y}]'", 1, 7)


def test_the_depth_limit_messages_point_at_the_flag_s_start():
    for flag, problem in (
        (
            ".".join(["a"] * (MAX_DEPTH + 1)) + "=1",
            f"the key path has {MAX_DEPTH + 1} levels, more than {MAX_DEPTH}",
        ),
        (
            "a=" + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
            f"nested more than {MAX_DEPTH} levels deep (key path and value)",
        ),
    ):
        with pytest.raises(DkeError) as info:
            parse_set(0, flag)
        assert str(info.value).endswith(f" col 1: {problem}")


def test_a_mapping_and_a_scalar_or_list_replace_each_other_and_no_input_changes():
    base = parse_yaml("env.yaml", "job: {resources: {limits: {cpu: 1}}}\nenv: {A: b}\n")[0]
    overlay = parse_yaml("o.yaml", "job: [1]\nenv: x\nflow: {parameters: {p: {q: 1}}}\n")[0]
    again = parse_yaml("o2.yaml", "job: {backoff_limit: 2}\n")[0]
    before = copy.deepcopy(overlay.data)
    merged = layer([base, overlay, again, parse_set(0, "flow.parameters.p.q=2")])
    assert merged.data == {"job": {"backoff_limit": 2}, "env": "x", "flow": {"parameters": {"p": {"q": 2}}}}
    assert overlay.data == before  # the flag changed the merged value, not the overlay's


def test_a_mapping_both_sides_write_keeps_the_origin_of_the_side_that_wrote_it_first():
    base = parse_yaml("env.yaml", "name: etl\n\nflow:\n  parameters: {n: 1}\n")[0]
    overlay = parse_yaml("o.yaml", "flow: {parameters: {n: 2}}\n")[0]
    merged = layer([base, overlay])
    # a problem with the mapping (a missing key) points at the base's `flow:`, one of its value at the overlay
    at = {
        p: merged.diagnostic(p, "DKE101", "x", prefer_key=True)
        for p in [("flow",), ("flow", "parameters", "n")]
    }
    assert [(d.file, d.line) for d in at.values()] == [("env.yaml", 3), ("o.yaml", 1)]


def test_each_value_points_at_the_file_that_wrote_it_through_later_merges():
    base = parse_yaml("env.yaml", "env: {A: x}\nflow: {parameters: {p: {q: 0}}}\n")[0]
    one = parse_yaml("one.yaml", "job: {resources: {limits: {cpu: 1}}}\nenv: {B: y}\n")[0]
    two = parse_yaml("two.yaml", "job: {resources: {requests: {cpu: 1}}}\nflow: {parameters: {p: {r: 1}}}\n")[
        0
    ]
    before = copy.deepcopy(base.data)
    merged = layer([base, one, two])
    files = {
        path: merged.diagnostic(path, "DKE101", "x").file
        for path in [
            ("env", "A"),
            ("env", "B"),
            ("job", "resources", "limits", "cpu"),
            ("job", "resources", "requests", "cpu"),
            ("flow", "parameters", "p", "q"),
            ("flow", "parameters", "p", "r", "deeper"),  # no position of its own: its parent's
        ]
    }
    assert list(files.values()) == ["env.yaml", "one.yaml", "one.yaml", "two.yaml", "env.yaml", "two.yaml"]
    assert base.data == before  # merged into a copy


def test_an_index_past_the_end_below_which_the_path_goes_on_names_the_index():
    with pytest.raises(DkeError) as info:
        layer([parse_yaml("env.yaml", "secrets: [a]\n")[0], parse_set(0, "secrets[3].x=1")])
    assert str(info.value).startswith(
        "--set #1 'secrets[3].x=1' col 9: secrets[3] is past the end of the list and leaves secrets[1] unset"
    )


def test_directives_in_a_list_that_replaces_another_are_read_through_wrapped_leaves():
    spec = Origin("spec", "$", "worker.yaml", 1, 1)
    patch = {
        "tolerations": [
            {"key": Traced("a", spec), "$patch": Traced("delete", spec)},
            {"key": Traced("b", spec)},
        ]
    }
    plain, _ = strip(strategic_merge({"tolerations": [{"key": "x"}]}, patch, None, value_of))
    assert plain == {"tolerations": [{"key": "b"}]}
