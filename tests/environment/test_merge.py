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
