"""dke.objects.provenance: where each compiled value came from."""

from dke.environment.load import parse_yaml
from dke.environment.specs import PodSpecFile
from dke.objects.provenance import DKE, Origin, Traced, at_path, origin_at, strip, trace_document, value_of


def test_origin_of_a_container_is_its_first_leaf_or_its_parent():
    origins = {("a", "b"): DKE, ("a", "c", 0): Origin("spec", "", "w.yaml", 2)}
    assert origin_at(origins, ("a", "c")).file == "w.yaml"
    assert origin_at(origins, ("a", "b", "deeper")) == DKE
    assert origin_at(origins, ("zzz",)) == DKE


def test_strip_splits_data_and_origins_and_unwrapped_leaves_get_the_default():
    here = Origin("environment", "env.A", "env.yaml", 3, 5, ("env", "A"))
    data = {"a": Traced("1", here), "b": [Traced({"c": 2}, here), 3]}
    plain, origins = strip(data, default=Origin("default", "x"))
    assert plain == {"a": "1", "b": [{"c": 2}, 3]}
    # a wrapped mapping gives its origin to itself and lends the default to its plain leaves
    assert origins == {
        ("a",): here,
        ("b", 0): here,
        ("b", 0, "c"): Origin("default", "x"),
        ("b", 1): Origin("default", "x"),
    }
    assert (value_of(Traced(5, DKE)), value_of(5)) == (5, 5)


def test_each_kind_of_origin_describes_itself():
    assert [
        DKE.describe(),
        Origin("run", "--run-id").describe(),
        Origin("default", "job.backoff_limit").describe(),
        Origin("environment", "min_workers", "--set #1 min_workers=3").describe(),
        Origin("spec", "$.containers[0].image", "w.yaml", 4, 3).describe(),
        Origin("environment", "image", "env.yaml", 2, 8).describe(),
    ] == [
        "dke",
        "--run-id",
        "default job.backoff_limit",
        "--set #1 min_workers=3",
        "w.yaml:4",
        "env.yaml:2 image",
    ]


def test_a_spec_file_is_traced_leaf_by_leaf_and_its_nulls_stay():
    doc = parse_yaml("w.yaml", "containers:\n- name: worker\n  args: [a, b]\nnodeSelector: null\n")[0]
    traced = trace_document(PodSpecFile(doc, ()))
    name = traced["containers"][0]["name"]
    assert (name.value, name.origin) == (
        "worker",
        Origin("spec", "$.containers[0].name", "w.yaml", 2, 9, ("containers", 0, "name")),
    )
    assert traced["containers"][0]["args"][1].origin.line == 3
    assert traced["nodeSelector"] is None  # a null deletes in the strategic merge: not a value


def test_at_path_reads_plain_and_missing_paths():
    data = {"a": {"b": [1]}, "s": "text"}
    assert at_path(data, ("a", "b")) == [1]
    assert at_path(data, ("a", "x", "y")) == {} and at_path(data, ("s", "t")) == {}


def test_a_path_below_a_traced_value_takes_its_nearest_ancestor_s_origin():
    here = Origin("environment", "flow.parameters.cfg", "env.yaml", 4, 3)
    origins = {("flow", "parameters", "cfg"): here, ("name",): DKE}
    assert origin_at(origins, ("flow", "parameters", "cfg", "x")) == here  # one level up
    assert origin_at(origins, ("flow", "parameters", "cfg", "x", 0, "y")) == here  # several


def test_at_path_of_a_missing_last_step_is_an_empty_mapping():
    assert at_path({"a": {}}, ("a", "b")) == {} and at_path({}, ("metadata",)) == {}
