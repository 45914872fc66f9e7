"""dke.environment.migrate: classic spec files in, dke-shaped spec files out, everything else kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dke.diagnostics import DkeError
from dke.environment import daskcli
from dke.environment.migrate import migrate

CLASSIC = Path(__file__).resolve().parent.parent / "data" / "classic"
EXPECTED = YAML(typ="safe").load((CLASSIC / "expected.yaml").read_text())
TRANSLATABLE = sorted(n for n, e in EXPECTED.items() if e["translatable"])
REFUSED = sorted(n for n, e in EXPECTED.items() if not e["translatable"])
FLOW_IMAGE = "ghcr.io/acme/flow:1.0"


def load(text: str):
    return YAML(typ="safe", pure=True).load(text)


def comments(text: str) -> list[str]:
    """Every comment of a file (they never hold '#' inside a value in this corpus)."""
    return [m.group(0).rstrip() for m in re.finditer(r"(?:^|(?<=\s))#.*$", text, re.MULTILINE)]


def pod_spec(data: dict) -> dict:
    return data["spec"] if "kind" in data else data


def test_the_corpus_is_big_enough_and_matches_its_folder():
    files = {p.name for p in CLASSIC.glob("*.yaml")} - {"expected.yaml"}
    assert files == set(EXPECTED)
    assert len(TRANSLATABLE) >= 6 and len(REFUSED) >= 5


@pytest.mark.parametrize("name", TRANSLATABLE)
@pytest.mark.parametrize("image", [None, FLOW_IMAGE])
def test_translatable_files_become_dke_shaped_and_keep_everything_else(name, image):
    text = (CLASSIC / name).read_text()
    expected = EXPECTED[name]
    role = expected["role"]
    result = migrate(text, name, image=image)
    assert not result.refusals, result.refusals
    assert result.changed and result.changes
    lines = text.count("\n") + 1
    assert all(1 <= c.line <= lines for c in result.changes)

    before, after = load(text), load(result.text)
    if "kind" in before:
        assert after["apiVersion"] == "v1" and after["kind"] == "Pod"
        meta = {
            k: v
            for k, v in before.get("metadata", {}).items()
            if k not in ("name", "generateName", "namespace")
        }
        assert after.get("metadata", {}) == meta
    spec = pod_spec(after)
    assert spec.get("restartPolicy", "Always") == "Always" and "activeDeadlineSeconds" not in spec
    dask = [c for c in spec["containers"] if daskcli.find_dask(c.get("command", []) + c.get("args", []))]
    assert len(dask) == 1
    container = dask[0]
    assert container["name"] == role and "command" not in container
    args = container["args"]
    found = daskcli.find_dask(args)
    assert found.role == role and found.start == 0 and not found.legacy_program
    assert args[: found.program_end] == list(getattr(found, "current", ("dask", role)))
    parsed = daskcli.parse(args, found)
    assert not parsed.unknown and not parsed.positionals
    assert not {f.flag for f in parsed.flags} & set(daskcli.MANAGED[role])
    for c in spec["containers"] + spec.get("initContainers", []):
        assert not {e["name"] for e in c.get("env", [])} & {"DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME"}
        assert ("image" in c) == (image is None)
    assert container.get("image", expected["image"]) == expected["image"]

    # the user's placement, resources, GPUs, tolerations, affinity, volumes, pull secrets: all kept
    old_spec = pod_spec(before)
    for key in set(old_spec) | set(spec):
        if key not in ("restartPolicy", "activeDeadlineSeconds", "containers", "initContainers"):
            assert spec.get(key) == old_spec.get(key), key
    pairs = list(zip(old_spec["containers"], spec["containers"], strict=True))
    pairs += list(zip(old_spec.get("initContainers", []), spec.get("initContainers", []), strict=True))
    for old, new in pairs:
        for key in set(old) | set(new):
            if key in ("name", "command", "args", "image"):
                continue
            if key == "env":
                kept = [
                    e for e in old["env"] if e["name"] not in ("DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME")
                ]
                assert new.get("env", []) == kept
            elif key.endswith("Probe"):  # a port number becomes the name of that port, the rest stays
                handler = next(k for k in ("httpGet", "tcpSocket", "grpc") if k in old[key])
                assert isinstance(new[key][handler]["port"], str)
                assert {**new[key], handler: {**new[key][handler], "port": old[key][handler]["port"]}} == old[
                    key
                ]
            else:
                assert new.get(key) == old.get(key), key

    # comments kept, but those on the lines migrate removes
    dropped = set(expected.get("drops", []))
    for comment in comments(text):
        assert (comment in result.text) != (comment in dropped), comment


@pytest.mark.parametrize("name", TRANSLATABLE)
@pytest.mark.parametrize("image", [None, FLOW_IMAGE])
def test_migrating_twice_changes_nothing_the_second_time(name, image):
    first = migrate((CLASSIC / name).read_text(), name, image=image)
    second = migrate(first.text, name, image=image)
    assert not second.refusals and not second.changes and second.text == first.text


@pytest.mark.parametrize("name", REFUSED)
def test_untranslatable_files_are_refused_at_their_line_and_left_alone(name):
    text = (CLASSIC / name).read_text()
    result = migrate(text, name)
    assert result.text == text and not result.changed
    assert result.refusals
    refusal = result.refusals[0]
    assert refusal.line == EXPECTED[name]["line"]
    assert EXPECTED[name]["word"] in refusal.message


def test_a_job_says_where_its_parts_go():
    result = migrate((CLASSIC / "prefect-scheduler-job.yaml").read_text(), "job.yaml")
    message = result.refusals[0].message
    assert "job:" in message and "scheduler spec" in message


def test_images_are_noted_without_image_and_kept_when_they_are_the_flow_image():
    text = (CLASSIC / "scheduler-sidecar.yaml").read_text()
    noted = migrate(text, "s.yaml")
    assert [n.line for n in noted.notes] == [10, 13]
    kept = migrate(text, "s.yaml", image="ghcr.io/acme/flow:1.4.2")
    assert not kept.notes
    assert all(c["image"] == "ghcr.io/acme/flow:1.4.2" for c in load(kept.text)["spec"]["containers"])


def test_a_file_already_in_dke_form_is_untouched():
    text = (
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: worker\n"
        "    args: [dask, worker, --nthreads, '2']\n"
    )
    result = migrate(text, "w.yaml")
    assert not result.changes and not result.refusals and result.text == text


def test_a_bare_podspec_with_only_placement_is_untouched():
    text = "nodeSelector: {pool: dask}\ntolerations: [{key: dask, operator: Exists}]\n"
    assert migrate(text, "w.yaml").text == text


def test_the_first_key_of_a_container_can_go():
    # `- image: x` first, as dask-kubernetes wrote it: the next key moves beside the dash
    text = "containers:\n- image: daskdev/dask:2021.3.0   # old\n  name: dask\n  args: [dask-worker]\n"
    result = migrate(text, "w.yaml", image=FLOW_IMAGE)
    assert result.text == "containers:\n- name: worker\n  args: [dask, worker]\n"


def test_removing_the_only_env_entry_removes_env():
    text = (
        "containers:\n- name: worker\n  args: [dask, worker]\n  env:\n  - name: DASK_WORKER_NAME\n"
        "    value: w\n  resources: {}\n"
    )
    result = migrate(text, "w.yaml")
    assert result.text == "containers:\n- name: worker\n  args: [dask, worker]\n  resources: {}\n"
    assert [c.line for c in result.changes] == [5]


def test_a_command_without_args_becomes_args():
    text = 'containers:\n- name: worker\n  command: ["dask-worker", "--nprocs", "2"]\n'
    result = migrate(text, "w.yaml")
    assert result.text == 'containers:\n- name: worker\n  args: ["dask", "worker", "--nworkers", "2"]\n'


def test_a_command_naming_the_program_is_folded_into_block_args_keeping_quotes():
    text = (
        "containers:\n- name: worker\n  command:\n  - 'dask-worker'\n  args:\n  # sizing\n"
        "  - --nthreads\n  - '2'\n"
    )
    result = migrate(text, "w.yaml")
    assert result.text == (
        "containers:\n- name: worker\n  args:\n  - 'dask'\n  - 'worker'\n  # sizing\n"
        "  - --nthreads\n  - '2'\n"
    )


def test_an_end_of_line_comment_keeps_its_column():
    text = "containers:\n- name: worker\n  args:\n  - dask-worker\n  - --nprocs     # processes\n  - '2'\n"
    result = migrate(text, "w.yaml")
    assert "  - --nworkers   # processes\n" in result.text


def test_windows_line_endings_stay():
    text = (
        "kind: Pod\r\nspec:\r\n  restartPolicy: Never\r\n  containers:\r\n  - name: dask\r\n"
        "    args: [dask-worker]\r\n"
    )
    result = migrate(text, "w.yaml")
    assert result.text == (
        "apiVersion: v1\r\nkind: Pod\r\nspec:\r\n  containers:\r\n  - name: worker\r\n"
        "    args: [dask, worker]\r\n"
    )


def test_a_sole_container_without_a_program_needs_the_role():
    text = "containers:\n- name: dask\n  resources: {limits: {cpu: '1'}}\n"
    refused = migrate(text, "w.yaml")
    assert refused.text == text and "--role" in refused.refusals[0].message
    assert refused.refusals[0].line == 2
    result = migrate(text, "w.yaml", role="worker")
    assert result.text == text.replace("dask", "worker")


def test_a_classic_name_says_the_role_and_which_container_runs_dask():
    text = (
        "containers:\n- name: sidecar\n  args: [sleep, infinity]\n- name: dask-scheduler\n  resources: {}\n"
    )
    result = migrate(text, "s.yaml")
    assert not result.refusals and "- name: scheduler\n" in result.text and "- name: sidecar\n" in result.text


def test_a_container_without_a_name_gets_one():
    text = "containers:\n- args: [dask-scheduler]\n  image: x:1\n"
    result = migrate(text, "s.yaml", image="x:1")
    assert load(result.text)["containers"][0] == {
        "args": ["dask", "scheduler"],
        "name": "scheduler",
        "image": "x:1",
    }


def test_the_role_given_must_match_the_program():
    text = "containers:\n- name: dask\n  args: [dask-scheduler]\n"
    result = migrate(text, "s.yaml", role="worker")
    assert "--role" in result.refusals[0].message and result.text == text


def test_another_container_holding_the_dask_name_is_refused():
    text = "containers:\n- name: worker\n  args: [tail, -f, /dev/null]\n- name: dask\n  args: [dask-worker]\n"
    result = migrate(text, "w.yaml")
    assert result.refusals[0].line == 2 and result.text == text


def test_a_wrapper_before_the_program_is_refused():
    text = "containers:\n- name: worker\n  command: [tini, -g, --]\n  args: [dask-worker]\n"
    result = migrate(text, "w.yaml")
    assert "tini" in result.refusals[0].message and result.refusals[0].line == 3


def test_a_second_positional_argument_is_refused():
    text = "containers:\n- name: worker\n  args: [dask-worker, tcp://s:8786, extra]\n"
    assert "'extra'" in migrate(text, "w.yaml").refusals[0].message


def test_aliases_are_refused_rather_than_edited_twice():
    text = "containers:\n- name: dask\n  args: &a [dask-worker]\ninitContainers:\n- name: x\n  args: *a\n"
    result = migrate(text, "w.yaml")
    assert result.refusals and result.text == text


@pytest.mark.parametrize(
    "text",
    [
        "- a\n- b\n",
        "just text\n",
        "kind: Service\napiVersion: v1\n",
        "name: etl\nimage: x:1\nflow: {entrypoint: f.py:f}\n",
    ],
)
def test_what_is_not_a_pod_spec_is_refused(text):
    result = migrate(text, "x.yaml")
    assert result.refusals and result.text == text


def test_a_pod_with_the_wrong_api_version_gets_v1():
    text = "apiVersion: apps/v1\nkind: Pod\nspec: {}\n"
    assert migrate(text, "x.yaml").text == "apiVersion: v1\nkind: Pod\nspec: {}\n"


def test_invalid_yaml_raises_with_its_position():
    with pytest.raises(DkeError) as e:
        migrate("kind: Pod\nspec: [\n", "bad.yaml")
    d = e.value.diagnostics[0]
    assert (d.file, d.line) == ("bad.yaml", 3)


def test_removing_the_last_entry_leaves_an_empty_mapping():
    text = "kind: Pod\nspec:\n  restartPolicy: Never   # classic\n"
    assert migrate(text, "w.yaml").text == "apiVersion: v1\nkind: Pod\nspec: {}\n"


def test_a_flow_sequence_over_two_lines_keeps_its_line_break():
    text = "containers:\n- name: worker\n  args: [dask-worker, --no-bokeh,\n         --nthreads, '2', --no-bokeh]\n"
    assert migrate(text, "w.yaml").text == (
        "containers:\n- name: worker\n  args: [dask, worker,\n         --nthreads, '2']\n"
    )


@pytest.mark.parametrize("name", ["worker", "scheduler"])
def test_a_dke_shaped_container_says_its_role_by_its_name(name):
    text = f"kind: Pod\nspec:\n  restartPolicy: Never\n  containers:\n  - name: {name}\n    resources: {{}}\n"
    result = migrate(text, "x.yaml")
    assert not result.refusals and "restartPolicy" not in result.text


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/specs/*.yaml"))


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: str(p.parent.parent.name + "/" + p.name))
def test_the_examples_spec_files_need_no_migration(spec):
    text = spec.read_text()
    result = migrate(text, str(spec))
    assert not result.refusals and result.text == text


LAYOUTS = [(2, 2, 0, False), (2, 4, 2, False), (4, 4, 2, None), (3, 3, 1, True)]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: "m{}s{}o{}-flow{}".format(*lay))
def test_the_same_file_in_any_layout_migrates_to_the_same_data(layout):
    import io

    mapping, sequence, offset, flow = layout
    yaml = YAML(typ="rt")
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.default_flow_style, yaml.width = flow, 40  # narrow: flow sequences span lines
    for name in TRANSLATABLE:
        buffer = io.StringIO()
        yaml.dump(load((CLASSIC / name).read_text()), buffer)
        for image in (None, FLOW_IMAGE):
            expected = load(migrate((CLASSIC / name).read_text(), name, image=image).text)
            result = migrate(buffer.getvalue(), name, image=image)
            assert not result.refusals, (name, result.refusals)
            assert load(result.text) == expected, name
            assert migrate(result.text, name, image=image).text == result.text


def test_odd_values_anywhere_are_refused_or_migrated_never_a_crash():
    # Deterministic: a fixed seed over the corpus, each value replaced by odd ones in turn.
    import copy
    import io
    import random

    rng = random.Random(0)
    odd = [None, 1, "x", [], {}, ["a", 1], {"a": [1]}, True, [{"name": 1}], [None]]

    def paths(node, path=()):
        yield path
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in items:
            yield from paths(value, path + (key,))

    for name in sorted(EXPECTED):
        data = load((CLASSIC / name).read_text())
        every = [p for p in paths(data) if p]
        for _ in range(12):
            mutated = copy.deepcopy(data)
            path = rng.choice(every)
            parent = mutated
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]] = copy.deepcopy(rng.choice(odd))
            buffer = io.StringIO()
            YAML().dump(mutated, buffer)
            for image in (None, FLOW_IMAGE):
                try:
                    result = migrate(buffer.getvalue(), name, image=image)
                except DkeError:
                    continue
                if result.changed:
                    assert not result.refusals
                    assert migrate(result.text, name, image=image).text == result.text


def test_a_container_named_as_dask_but_running_something_else_is_refused():
    text = "containers:\n- name: logs\n  args: [tail]\n- name: dask-worker\n  args: [python, app.py]\n"
    result = migrate(text, "w.yaml")
    assert result.refusals[0].line == 5 and "'python'" in result.refusals[0].message and result.text == text


def test_numbers_in_args_are_quoted_as_written():
    text = "containers:\n- name: worker\n  args: [dask-worker, --nthreads, 2, --death-timeout, 6e1]\n"
    result = migrate(text, "w.yaml")
    assert result.text.endswith("  args: [dask, worker, --nthreads, '2', --death-timeout, '6e1']\n")
    assert sum("quoted" in c.message for c in result.changes) == 2


def test_probe_ports_become_the_names_of_declared_ports():
    text = (
        "containers:\n- name: dask-scheduler\n  args: [dask-scheduler]\n  ports:\n"
        "  - {containerPort: 8786, name: comm}\n  readinessProbe:\n    httpGet: {path: /health, port: 8787}\n"
        "  livenessProbe:\n    tcpSocket:\n      port: 8786   # comm\n"
        "- name: side\n  args: [x]\n  livenessProbe: {httpGet: {port: 9000}}\n"
    )
    result = migrate(text, "s.yaml")
    assert "httpGet: {path: /health, port: http-dashboard}\n" in result.text  # dke's scheduler declares it
    assert "      port: comm   # comm\n" in result.text  # the file declares it
    assert "{port: 9000}" in result.text and [n.line for n in result.notes] == [13]
