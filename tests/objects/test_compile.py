"""dke.objects.compile: objects, the DaskCluster in the RunSpec, provenance."""

import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from objects_support import load, pods, run_spec, write_env

from dke.diagnostics import ERROR, WARNING
from dke.environment import model
from dke.environment.pipeline import load_environment
from dke.objects import compile as dc
from dke.objects.provenance import Origin, strip
from dke.objects.runspec import RUN_SPEC_ENV
from dke.objects.verify import validate_objects

KUBE = "1.35"


# --- objects ------------------------------------------------------------------------------------


def test_objects_in_apply_order_with_names_and_labels(tmp_path):
    loaded = load(tmp_path, labels={"team": "data"}, annotations={"owner": "me"})
    objects = dc.compile_environment(loaded, run_id="abc", namespace="ns1")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding", "Job"]
    assert [o["metadata"]["name"] for o in objects] == ["etl-runner"] * 3 + ["etl-abc"]
    for o in objects:
        labels = o["metadata"]["labels"]
        assert (
            labels[dc.MANAGED_BY] == "dke"
            and labels[dc.APP_NAME] == "etl"
            and labels[dc.ENVIRONMENT_LABEL] == "etl"
        )
        assert labels["team"] == "data" and o["metadata"]["annotations"] == {"owner": "me"}
        assert o["metadata"]["namespace"] == "ns1"
    job = objects[-1]
    assert job["metadata"]["labels"][dc.RUN_ID_LABEL] == "abc"
    template = job["spec"]["template"]
    assert template["metadata"]["labels"][dc.RUN_ID_LABEL] == "abc"
    assert template["metadata"]["annotations"] == {dc.SAFE_TO_EVICT: "false", "owner": "me"}
    assert template["spec"]["restartPolicy"] == "Never"
    assert template["spec"]["serviceAccountName"] == "etl-runner"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "activeDeadlineSeconds" not in job["spec"]
    container = template["spec"]["containers"][0]
    assert container["command"] == ["dke", "incluster"]
    downward = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e
    }
    assert downward == {
        "DKE_JOB_NAME": "metadata.labels['batch.kubernetes.io/job-name']",
        "DKE_JOB_UID": "metadata.labels['batch.kubernetes.io/controller-uid']",
        "DKE_NAMESPACE": "metadata.namespace",
        "DKE_POD_NAME": "metadata.name",
        "DKE_POD_IP": "status.podIP",
    }
    cluster = run_spec(job).cluster
    assert cluster["metadata"]["name"] == "etl-abc" and cluster["metadata"]["namespace"] == "ns1"
    assert cluster["metadata"]["labels"][dc.RUN_ID_LABEL] == "abc"


def test_role_is_least_privilege_and_namespaced(tmp_path):
    sa, role, binding, _ = dc.compile_environment(load(tmp_path))
    rules = {
        (g, r): set(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert rules == {
        ("kubernetes.dask.org", "daskclusters"): {"get", "list", "watch", "create", "patch", "delete"},
        ("kubernetes.dask.org", "daskworkergroups"): {"get", "list", "watch", "create", "patch", "delete"},
        ("kubernetes.dask.org", "daskautoscalers"): {"get", "list", "watch", "create", "patch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "services"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
        ("batch", "jobs"): {"get", "list"},
        ("batch", "jobs/finalizers"): {"update"},
    }
    assert "*" not in json.dumps(role["rules"])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "etl-runner",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "etl-runner", "namespace": "default"}]


def test_existing_service_account_skips_rbac(tmp_path):
    objects = dc.compile_environment(
        load(
            tmp_path,
            job={
                "service_account": "platform-runner",
                "backoff_limit": 2,
                "active_deadline_seconds": 60,
                "safe_to_evict": True,
                "ttl_seconds_after_finished": None,
            },
        )
    )
    (job,) = objects
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "platform-runner"
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 60
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert "annotations" not in job["spec"]["template"]["metadata"]  # safe to evict: no annotation
    assert dc.SAFE_TO_EVICT not in json.dumps(run_spec(job).cluster)


@pytest.mark.parametrize("fields", [{"executor": "local"}, {"scheduler_address": "tcp://dask:8786"}])
def test_no_cluster_means_no_role(tmp_path, fields):
    objects = dc.compile_environment(load(tmp_path, **fields))
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Job"]
    spec = run_spec(objects[-1])
    assert spec.cluster is None
    assert spec.scheduler_address == fields.get("scheduler_address")
    assert spec.executor == fields.get("executor", "dask")  # what the runner in the Job runs the flow on
    assert validate_objects(load(tmp_path, **fields), KUBE) == []


def test_env_secrets_and_pull_secret_reach_every_pod_and_container(tmp_path):
    worker = """
apiVersion: v1
kind: Pod
metadata: {labels: {pool: big}, annotations: {note: hi}}
spec:
  imagePullSecrets: [{name: extra}]
  containers:
  - name: worker
    env: [{name: LOG_LEVEL, value: debug}]
    envFrom: [{configMapRef: {name: cfg}}]
  - name: sidecar
    args: [sleep, infinity]
  initContainers:
  - name: init
    args: ["true"]
"""
    loaded = load(
        tmp_path,
        {"worker.yaml": worker},
        worker_spec_file="worker.yaml",
        private_registry=True,
        env={"LOG_LEVEL": "info", "REGION": "eu"},
        secrets=["prefect-api", "db"],
    )
    compiled = dc.compile_traced(loaded)
    for pod in pods(compiled.objects, compiled.cluster):
        assert {"name": "etl-registry"} in pod["imagePullSecrets"]
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["image"] == "ghcr.io/acme/etl:1.0"
            names = [e["name"] for e in c["env"]]
            assert "REGION" in names and names.count("LOG_LEVEL") == 1
            refs = [e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e]
            assert refs == ["prefect-api", "db"]
    worker_pod = compiled.cluster["spec"]["worker"]["spec"]
    assert worker_pod["imagePullSecrets"] == [{"name": "etl-registry"}, {"name": "extra"}]
    main = worker_pod["containers"][0]
    assert {"name": "LOG_LEVEL", "value": "debug"} in main["env"]  # the spec file wins
    assert main["envFrom"][0] == {"configMapRef": {"name": "cfg"}}  # its own envFrom kept, secrets added
    meta = compiled.cluster["spec"]["worker"]["metadata"]
    assert meta == {"annotations": {dc.SAFE_TO_EVICT: "false", "note": "hi"}, "labels": {"pool": "big"}}


def test_worker_defaults_die_with_the_scheduler(tmp_path):
    cluster = dc.compile_traced(load(tmp_path, min_workers=3, max_workers=3)).cluster
    worker = cluster["spec"]["worker"]
    assert worker["replicas"] == 3
    args = worker["spec"]["containers"][0]["args"]
    assert args[:2] == ["dask", "worker"] and args[args.index("--death-timeout") + 1] == "60"
    assert cluster["spec"]["scheduler"]["spec"]["containers"][0]["args"][:2] == ["dask", "scheduler"]


def test_cluster_has_the_shape_of_dask_kubernetes_make_cluster_spec(tmp_path):
    from dask_kubernetes.operator import make_cluster_spec

    loaded = load(tmp_path, min_workers=2, max_workers=5, env={"A": "1"})
    ours = dc.compile_traced(loaded, run_id="r1").cluster
    ref = make_cluster_spec(
        "etl-r1", image="ghcr.io/acme/etl:1.0", n_workers=2, env={"A": "1"}, worker_command="dask worker"
    )
    assert (ours["apiVersion"], ours["kind"], ours["metadata"]["name"]) == (
        ref["apiVersion"],
        ref["kind"],
        "etl-r1",
    )
    assert ours["spec"]["idleTimeout"] == ref["spec"]["idleTimeout"]
    assert ours["spec"]["scheduler"]["service"] == ref["spec"]["scheduler"]["service"]
    assert ours["spec"]["worker"]["replicas"] == ref["spec"]["worker"]["replicas"]
    (rs,) = ref["spec"]["scheduler"]["spec"]["containers"]
    (os_,) = ours["spec"]["scheduler"]["spec"]["containers"]
    for key in ("name", "image", "env", "ports", "readinessProbe", "livenessProbe"):
        assert os_[key] == rs[key], key
    assert os_["args"] == ["dask", "scheduler"] + rs["args"][1:]  # `dask scheduler`, not `dask-scheduler`
    (rw,) = ref["spec"]["worker"]["spec"]["containers"]
    (ow,) = ours["spec"]["worker"]["spec"]["containers"]
    for key in ("name", "image", "env", "ports"):
        assert ow[key] == rw[key], key
    assert ow["args"] == rw["args"] + ["--death-timeout", "60"]


def test_render_is_deterministic_and_run_ids_are_real(tmp_path):
    loaded = load(tmp_path)
    assert dc.compile_environment(loaded) == dc.compile_environment(load(tmp_path))
    assert dc.compile_environment(loaded)[-1]["metadata"]["name"] == f"etl-{dc.PLACEHOLDER_RUN_ID}"
    ids = [dc.new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    for run_id in ids:
        assert dc.check_run_id(run_id) == run_id and len(run_id) == 11
    import time

    before = dc.new_run_id()
    time.sleep(1.05)
    assert dc.new_run_id()[:7] > before[:7]  # sorts by start time


def test_run_id_is_checked(tmp_path):
    with pytest.raises(dc.DkeError) as e:
        dc.compile_environment(load(tmp_path), run_id="-bad")
    assert e.value.exit_code == 2


# --- provenance -------------------------------------------------------------------------------------


def test_every_value_has_an_origin_with_file_and_line(tmp_path):
    worker = "containers:\n- name: worker\n  resources:\n    limits: {memory: 2Gi}\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml", min_workers=2)
    compiled = dc.compile_traced(loaded)
    origins = compiled.cluster_origins
    limit = origins[("spec", "worker", "spec", "containers", 0, "resources", "limits", "memory")]
    assert (limit.kind, limit.file.endswith("worker.yaml"), limit.line) == ("spec", True, 4)
    replicas = origins[("spec", "worker", "replicas")]
    assert (replicas.kind, replicas.key) == ("environment", "min_workers")
    lines = Path(replicas.file).read_text().splitlines()
    assert '"min_workers": 2' in lines[replicas.line - 1]
    image = origins[("spec", "worker", "spec", "containers", 0, "image")]
    assert image.key == "image"  # the spec file names no image: the flow image fills in
    job_origins = compiled.origins[-1]
    assert job_origins[("spec", "backoffLimit")].describe() == "default job.backoff_limit"
    assert job_origins[("spec", "template", "spec", "restartPolicy")].describe() == "dke"
    assert job_origins[("metadata", "labels", dc.RUN_ID_LABEL)].kind == "run"
    # every leaf of every object is accounted for
    for obj, where in zip(compiled.objects, compiled.origins):
        assert set(_leaves(obj)) == set(where)


def _leaves(node, path=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    elif not isinstance(node, (dict, list)):
        yield path


def test_overlay_and_set_origins(tmp_path):
    path = write_env(tmp_path, {"name": "etl", "image": "x:1", "flow": {"entrypoint": "flows/flow.py:main"}})
    (tmp_path / "prod.yaml").write_text("namespace: prod\nmin_workers: 2\nmax_workers: 9\n")
    loaded = load_environment(path, [str(tmp_path / "prod.yaml")], ["min_workers=3"])
    compiled = dc.compile_traced(loaded)
    assert (
        compiled.origins[0][("metadata", "namespace")].describe() == f"{tmp_path / 'prod.yaml'}:1 namespace"
    )
    assert compiled.cluster_origins[("spec", "worker", "replicas")].describe() == "--set #1 min_workers=3"
    assert compiled.run_origins[("max_workers",)].describe() == f"{tmp_path / 'prod.yaml'}:3 max_workers"


# --- offline validation ------------------------------------------------------------------------------


def test_name_that_makes_an_invalid_service_name(tmp_path):
    # <name>-<run id>-scheduler is the operator's Service: a DNS-1035 label, so the name starts with a letter
    data = {"name": "9etl", "image": "ghcr.io/acme/etl:1.0", "flow": {"entrypoint": "flows/flow.py:main"}}
    loaded = load_environment(write_env(tmp_path, data))
    (d,) = loaded.diagnostics
    assert (d.code, d.severity, d.line, d.path) == ("DKE103", ERROR, 2, "$.name")
    longest = "a" * 40 + "-" + "b" * dc.RUN_ID_MAX + "-scheduler"
    assert len(longest) <= 63


def test_dask_container_under_another_name_is_taken_as_the_worker(tmp_path):
    worker = (
        "containers:\n- name: dask-worker\n  args: [dask, worker, --nthreads, '2']\n  resources:\n"
        "    limits: {nvidia.com/gpu: 1}\n"
    )
    data = {
        "name": "etl",
        "image": "ghcr.io/acme/etl:1.0",
        "flow": {"entrypoint": "flows/flow.py:main"},
        "worker_spec_file": "worker.yaml",
    }
    loaded = load_environment(write_env(tmp_path, data, {"worker.yaml": worker}))
    (d,) = loaded.diagnostics
    assert (d.code, d.severity, d.line) == ("DKE213", WARNING, 2) and "name it 'worker'" in d.message
    cluster = dc.compile_traced(loaded).cluster
    (container,) = cluster["spec"]["worker"]["spec"]["containers"]  # one Dask worker per pod
    assert container["name"] == "worker" and container["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert container["args"] == [
        "dask",
        "worker",
        "--name",
        "$(DASK_WORKER_NAME)",
        "--dashboard",
        "--dashboard-address",
        "8788",
        "--death-timeout",
        "60",
        "--nthreads",
        "2",
    ]


# --- property: whatever the model accepts compiles to valid objects on the flow image ----------------


LABEL = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")


NAME = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")


TEXT = st.text(string.ascii_letters + string.digits + " :/.-_", max_size=12)


SPECS = {
    "none": None,
    "selector": "nodeSelector: {pool: big}\ntolerations: [{key: k, operator: Exists, effect: NoSchedule}]\n",
    "resources": "containers:\n- name: worker\n  resources: {limits: {cpu: '2', memory: 4Gi}}\n",
    "sidecar": "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec:\n  containers:\n  - name: side\n"
    "    args: [sleep, '1']\n  initContainers:\n  - name: init\n    args: ['true']\n",
    "volumes": "volumes: [{name: v, emptyDir: {}}]\ncontainers:\n- name: scheduler\n  volumeMounts: "
    "[{name: v, mountPath: /v}]\n- name: worker\n  volumeMounts: [{name: v, mountPath: /v}]\n",
}


@st.composite
def environments(draw):
    data = {
        "name": draw(NAME.filter(lambda s: len(s) <= model.NAME_MAX)),
        "image": draw(
            st.sampled_from(
                ["ghcr.io/acme/etl:1.0", "registry.local:5000/x/y@sha256:" + "a" * 64, "flow:2024.1"]
            )
        ),
        "flow": {
            "entrypoint": "flows/flow.py:main",
            "parameters": draw(
                st.dictionaries(
                    st.from_regex(r"\A[a-z_]{1,6}\Z"),
                    st.one_of(st.integers(), TEXT, st.booleans()),
                    max_size=2,
                )
            ),
        },
    }
    low = draw(st.integers(0, 5))
    optional = {
        "namespace": LABEL,
        "min_workers": st.just(low),
        "max_workers": st.integers(max(low, 1), 8),
        "private_registry": st.booleans(),
        "image_pull_secret": LABEL,
        "env": st.dictionaries(st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,6}\Z"), TEXT, max_size=3),
        "secrets": st.lists(LABEL, max_size=2, unique=True),
        "labels": st.dictionaries(st.from_regex(r"\A[a-z]{1,5}(\.io/[a-z]{1,4})?\Z"), LABEL, max_size=2),
        "annotations": st.dictionaries(st.from_regex(r"\A[a-z]{1,6}\Z"), TEXT, max_size=2),
        "job": st.fixed_dictionaries(
            {},
            optional={
                "service_account": LABEL,
                "backoff_limit": st.integers(0, 6),
                "ttl_seconds_after_finished": st.none() | st.integers(0, 10**6),
                "active_deadline_seconds": st.none() | st.integers(1, 10**6),
                "safe_to_evict": st.booleans(),
                "resources": st.sampled_from(
                    [
                        {},
                        {"requests": {"cpu": "250m", "memory": 512}, "limits": {"cpu": 1.5, "memory": "1Gi"}},
                    ]
                ),
                "node_selector": st.dictionaries(LABEL, LABEL, max_size=2),
                "tolerations": st.lists(
                    st.sampled_from(
                        [
                            {
                                "key": "dedicated",
                                "operator": "Equal",
                                "value": "flows",
                                "effect": "NoSchedule",
                            },
                            {"operator": "Exists"},
                            {
                                "key": "k",
                                "operator": "Exists",
                                "effect": "NoExecute",
                                "tolerationSeconds": 60,
                            },
                        ]
                    ),
                    max_size=2,
                ),
            },
        ),
        "executor": st.sampled_from(["dask", "local"]),
        "scheduler_address": st.just("tcp://dask-scheduler:8786"),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            data[key] = draw(strategy)
    if "scheduler_address" in data and data.get("executor") == "local":
        del data["scheduler_address"]
    specs = {}
    for role in ("scheduler", "worker"):
        choice = draw(st.sampled_from(sorted(SPECS)))
        if SPECS[choice] and "scheduler_address" not in data and data.get("executor") != "local":
            specs[f"{role}.yaml"] = SPECS[choice]
            data[f"{role}_spec_file"] = f"{role}.yaml"
    return data, specs


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=environments())
def test_every_accepted_environment_compiles_to_valid_objects_on_the_flow_image(tmp_path, case):
    data, specs = case
    for old in tmp_path.glob("*.yaml"):
        old.unlink()
    loaded = load_environment(write_env(tmp_path, data, specs))
    if not loaded.ok():  # the model (or a check) refused it: nothing to compile
        assert any(d.is_error for d in loaded.diagnostics)
        return
    assert [d for d in validate_objects(loaded, KUBE) if d.is_error] == []
    compiled = dc.compile_traced(loaded, run_id=dc.new_run_id())
    assert compiled.objects[-1]["kind"] == "Job"
    for pod in pods(compiled.objects, compiled.cluster):
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["image"] == loaded.env.image
        if loaded.env.private_registry:
            assert {"name": loaded.env.pull_secret_name} in pod["imagePullSecrets"]
    spec = run_spec(compiled.objects[-1])
    assert spec.cluster == compiled.cluster
    assert (spec.min_workers, spec.max_workers) == (loaded.env.min_workers, loaded.env.max_workers)


# --- literal contract: label keys and the default pull secret ------------------------------------
# Spelled out here, not through dke.objects.compile's constants: `dke status/logs/delete` (dke.runners.kuberuns), the
# in-cluster runner and users' own selectors depend on these exact strings, and a test that used
# the constants would follow a rename of one of them.


def test_label_keys_are_the_documented_strings(tmp_path):
    loaded = load(tmp_path, private_registry=True)
    objects = dc.compile_environment(loaded, run_id="r7", namespace="ns1")
    common = {
        "app.kubernetes.io/managed-by": "dke",
        "app.kubernetes.io/name": "etl",
        "dke.dev/environment": "etl",
    }
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert {k: labels.get(k) for k in common} == common, obj["kind"]
        assert ("dke.dev/run-id" in labels) == (obj["kind"] == "Job"), obj["kind"]
    job = objects[-1]
    assert job["metadata"]["labels"]["dke.dev/run-id"] == "r7"
    assert job["spec"]["template"]["metadata"]["labels"]["dke.dev/run-id"] == "r7"
    cluster = run_spec(job).cluster
    assert cluster["metadata"]["labels"]["dke.dev/run-id"] == "r7"
    assert cluster["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dke"
    assert cluster["metadata"]["labels"]["dke.dev/environment"] == "etl"


@pytest.mark.parametrize("role", ["scheduler", "worker"])
def test_the_default_pods_carry_the_pull_secret_themselves(tmp_path, role):
    """dke's default pod (before any spec file merges over it) names the pull secret: so a spec
    file's own imagePullSecrets merge after it, and dke's comes first, once."""
    compiler = dc._Compiler(load(tmp_path, private_registry=True), "r7", None)
    default, _ = strip(getattr(compiler, f"{role}_pod")())
    assert default["imagePullSecrets"] == [{"name": "etl-registry"}]
    assert (
        "imagePullSecrets" not in strip(getattr(dc._Compiler(load(tmp_path), "r7", None), f"{role}_pod")())[0]
    )


def test_numeric_quantities_become_strings_the_operators_crd_takes(tmp_path):
    worker = (
        "containers:\n- name: worker\n  resources:\n    limits: {cpu: 2, nvidia.com/gpu: 1, memory: 4Gi}\n"
        "    requests: {cpu: 0.5}\nvolumes:\n- name: s\n  emptyDir: {sizeLimit: 1000}\n"
    )
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    compiled = dc.compile_traced(loaded)
    pod = compiled.cluster["spec"]["worker"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"] == {
        "limits": {"cpu": "2", "nvidia.com/gpu": "1", "memory": "4Gi"},
        "requests": {"cpu": "0.5"},
    }
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "1000"}
    assert (
        compiled.cluster_origins[
            ("spec", "worker", "spec", "containers", 0, "resources", "limits", "cpu")
        ].line
        == 4
    )
    assert validate_objects(loaded, KUBE) == []


# --- what mutation testing found unchecked (see tests/README.md, "Mutation testing") -------------


def test_run_ids_up_to_twelve_characters(tmp_path):
    loaded = load(tmp_path)
    assert dc.compile_environment(loaded, run_id="a" * 12)[-1]["metadata"]["name"] == "etl-" + "a" * 12
    for bad in ("a" * 13, "-bad", "Bad", "bad-"):
        with pytest.raises(dc.DkeError) as e:
            dc.compile_environment(loaded, run_id=bad)
        assert e.value.exit_code == 2
        assert e.value.message == (
            f"run id {bad!r} must be at most 12 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )


def test_where_the_run_values_and_the_names_come_from(tmp_path):
    """What `dke render --explain` shows for the values that do not come from a file line."""

    def origins_of(loaded, *args):
        compiled = dc.compile_traced(loaded, *args)
        job, origins = compiled.objects[-1], compiled.origins[-1]
        env = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
        spec_at = ("spec", "template", "spec", "containers", 0, "env", env.index(RUN_SPEC_ENV), "value")
        return {
            what: origins.get(path)
            for what, path in (
                ("name", ("metadata", "name")),
                ("namespace", ("metadata", "namespace")),
                ("run id", ("metadata", "labels", "dke.dev/run-id")),
                ("run spec", spec_at),
                ("service account", ("spec", "template", "spec", "serviceAccountName")),
            )
        }

    loaded = load(tmp_path, job={"service_account": "sa"})
    file = loaded.file
    found = origins_of(loaded)
    assert found == {
        "name": Origin("environment", "name", file, 2, 10, ("name",)),
        "namespace": Origin("default", "namespace"),
        "run id": Origin("run", "run id placeholder (--run-id)"),
        "run spec": Origin("run", "dke: the run spec, annotated below"),
        "service account": Origin(
            "environment", "job.service_account", file, 8, 22, ("job", "service_account")
        ),
    }
    found = origins_of(loaded, "r1", "ns1")
    assert (found["run id"], found["namespace"]) == (Origin("run", "--run-id"), Origin("run", "--namespace"))
    found = origins_of(load(tmp_path, namespace="data"))
    assert found["namespace"] == Origin("environment", "namespace", file, 7, 15, ("namespace",))
    # ... and every object goes there
    assert {o["metadata"]["namespace"] for o in dc.compile_environment(load(tmp_path, namespace="data"))} == {
        "data"
    }


@pytest.mark.parametrize("extra", [{}, {"scheduler_address": "tcp://dask:8786"}])
def test_the_explained_run_spec_is_the_run_spec_with_each_value_s_origin(tmp_path, extra):
    loaded = load(
        tmp_path,
        flow={"entrypoint": "flows/flow.py:main", "parameters": {"n": 5}},
        min_workers=1,
        max_workers=3,
        **extra,
    )
    compiled = dc.compile_traced(loaded, "r1")
    spec = run_spec(compiled.objects[-1]).model_dump(mode="json")
    assert compiled.run == {k: v for k, v in spec.items() if k in compiled.run}
    assert set(compiled.run) == {"name", "run_id", "flow", "min_workers", "max_workers", "executor", *extra}
    where = {path: (o.kind, o.key, o.path) for path, o in compiled.run_origins.items()}
    assert where == {
        ("name",): ("environment", "name", ("name",)),
        ("run_id",): ("run", "--run-id", ()),
        ("flow", "entrypoint"): ("environment", "flow.entrypoint", ("flow", "entrypoint")),
        ("flow", "parameters", "n"): ("environment", "flow.parameters.n", ("flow", "parameters", "n")),
        ("min_workers",): ("environment", "min_workers", ("min_workers",)),
        ("max_workers",): ("environment", "max_workers", ("max_workers",)),
        ("executor",): ("default", "executor", ()),
        **(
            {("scheduler_address",): ("environment", "scheduler_address", ("scheduler_address",))}
            if extra
            else {}
        ),
    }


def test_the_scheduler_spec_file_reaches_the_scheduler(tmp_path):
    scheduler = (
        "kind: Pod\nmetadata:\n  labels: {pool: small}\nspec:\n  nodeSelector: {disk: ssd}\n"
        "  containers:\n  - name: scheduler\n    resources: {limits: {memory: 1Gi}}\n"
    )
    loaded = load(tmp_path, {"scheduler.yaml": scheduler}, scheduler_spec_file="scheduler.yaml")
    compiled = dc.compile_traced(loaded)
    part = compiled.cluster["spec"]["scheduler"]
    assert part["metadata"] == {"annotations": {dc.SAFE_TO_EVICT: "false"}, "labels": {"pool": "small"}}
    assert part["spec"]["nodeSelector"] == {"disk": "ssd"}
    [container] = part["spec"]["containers"]
    assert container["resources"] == {"limits": {"memory": "1Gi"}} and container["args"][:2] == [
        "dask",
        "scheduler",
    ]
    assert "nodeSelector" not in compiled.cluster["spec"]["worker"]["spec"]
    o = compiled.cluster_origins[("spec", "scheduler", "spec", "nodeSelector", "disk")]
    assert (o.kind, o.file.endswith("scheduler.yaml"), o.line) == ("spec", True, 5)
    assert o.path == ("spec", "nodeSelector", "disk")


@pytest.mark.parametrize(
    "pull", [{"private_registry": True}, {"private_registry": True, "image_pull_secret": "regcred"}]
)
def test_where_env_secrets_labels_and_pull_secrets_come_from(tmp_path, pull):
    loaded = load(tmp_path, env={"A": "1"}, secrets=["s1"], labels={"team": "data"}, **pull)
    compiled = dc.compile_traced(loaded, "r1", "ns1")
    job, origins = compiled.objects[-1], compiled.origins[-1]
    # render names the pull Secret `dke apply` creates, and where
    name = pull.get("image_pull_secret", loaded.env.pull_secret_name)
    assert (compiled.pull_secret, compiled.namespace) == (name, "ns1")
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": name}]
    pod = ("spec", "template", "spec")
    env = [e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    a = pod + ("containers", 0, "env", env.index("A"))

    def where(path):
        o = origins[path]
        return o.kind, o.key, o.path

    assert where(a + ("name",)) == where(a + ("value",)) == ("environment", "env.A", ("env", "A"))
    assert where(pod + ("containers", 0, "envFrom", 0, "secretRef", "name")) == (
        "environment",
        "secrets.0",
        ("secrets", 0),
    )
    assert where(("metadata", "labels", "team")) == ("environment", "labels.team", ("labels", "team"))
    key = "image_pull_secret" if "image_pull_secret" in pull else "private_registry"
    assert where(pod + ("imagePullSecrets", 0, "name")) == ("environment", key, (key,))
    assert where(("spec", "template", "metadata", "annotations", dc.SAFE_TO_EVICT)) == (
        "default",
        "job.safe_to_evict",
        (),
    )


def test_only_the_dask_container_gets_the_dask_command(tmp_path):
    worker = (
        "containers:\n- name: worker\n  args: [dask, worker, --nthreads, '2']\n"
        "- name: sidecar\n  command: [sh, -c]\n  args: [sleep infinity]\n"
    )
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    main, sidecar = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]["containers"]
    assert main["args"][:2] == ["dask", "worker"] and "--nthreads" in main["args"] and "command" not in main
    assert (sidecar["command"], sidecar["args"]) == (["sh", "-c"], ["sleep infinity"])


def test_the_runner_component_label_and_a_renamed_container_s_origin(tmp_path):
    objects = dc.compile_environment(load(tmp_path), "r1")
    job = objects[-1]
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "runner"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "runner"
    assert all("app.kubernetes.io/component" not in o["metadata"]["labels"] for o in objects[:-1])
    # a classic container name taken for dke's: the name's origin is the line that named it
    worker = "containers:\n- name: dask-worker\n  args: [dask, worker]\n"
    compiled = dc.compile_traced(load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml"))
    o = compiled.cluster_origins[("spec", "worker", "spec", "containers", 0, "name")]
    assert (o.kind, o.file.endswith("worker.yaml"), o.line) == ("spec", True, 2)


# --- the runner pod's resources and placement; containers allowed another image ------------------------


def test_the_runner_pod_gets_job_resources_node_selector_and_tolerations_with_their_origins(tmp_path):
    from standin_admission import admit

    job_settings = {
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "2Gi"}},
        "node_selector": {"pool": "system"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "flows", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
    }
    loaded = load(tmp_path, job=job_settings)
    compiled = dc.compile_traced(loaded, "r1", "ns1")
    job, origins = compiled.objects[-1], compiled.origins[-1]
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {  # quantities as strings, as the API server prints them
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == job_settings["tolerations"]  # only the fields that were written
    where = origins[("spec", "template", "spec", "nodeSelector", "pool")]
    assert (where.kind, where.key, where.path) == (
        "environment",
        "job.node_selector.pool",
        ("job", "node_selector", "pool"),
    )
    where = origins[("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu")]
    assert (where.kind, where.key, where.path) == (
        "environment",
        "job.resources.limits.cpu",
        ("job", "resources", "limits", "cpu"),
    )
    assert '"cpu": 1' in Path(loaded.file).read_text().splitlines()[where.line - 1]
    assert origins[("spec", "template", "spec", "tolerations", 1, "tolerationSeconds")].key == (
        "job.tolerations.1.tolerationSeconds"
    )
    # the scheduler and workers keep their own pods: placement is the runner's alone
    for role in ("scheduler", "worker"):
        assert "nodeSelector" not in compiled.cluster["spec"][role]["spec"]
    assert validate_objects(loaded, KUBE, compiled) == []
    assert admit("CREATE", json.loads(json.dumps(job)), None) == []  # the stand-in API server's admission


def test_without_job_settings_the_runner_pod_has_no_resources_or_placement(tmp_path):
    pod = dc.compile_environment(load(tmp_path))[-1]["spec"]["template"]["spec"]
    assert "resources" not in pod["containers"][0] and "nodeSelector" not in pod and "tolerations" not in pod


def test_containers_that_run_an_extra_image_are_named_with_the_entry_that_allows_them(tmp_path):
    proxy = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.11.0"
    migrate = "ghcr.io/acme/migrate:3"
    worker = (
        f"containers:\n- name: worker\n- name: proxy\n  image: {proxy}\n"
        f"initContainers:\n- name: init\n- name: migrate\n  image: {migrate}\n"
    )
    loaded = load(
        tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml", extra_images=[proxy, migrate]
    )
    compiled = dc.compile_traced(loaded)
    init, use = compiled.extra_images
    assert (init.role, init.group, init.container, init.image) == (
        "worker",
        "initContainers",
        "migrate",
        migrate,
    )
    assert init.allowed_by.key == "extra_images.1"
    assert (use.role, use.group, use.container, use.image) == ("worker", "containers", "proxy", proxy)
    assert (use.allowed_by.key, use.allowed_by.path, use.allowed_by.file) == (
        "extra_images.0",
        ("extra_images", 0),
        loaded.file,
    )
    containers = compiled.cluster["spec"]["worker"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["ghcr.io/acme/etl:1.0", proxy]
    inits = compiled.cluster["spec"]["worker"]["spec"]["initContainers"]
    assert [c["image"] for c in inits] == ["ghcr.io/acme/etl:1.0", migrate]
    assert validate_objects(loaded, KUBE, compiled) == []


def test_a_container_on_the_flow_image_is_no_extra_image_use_even_when_listed(tmp_path):
    flow_image = "ghcr.io/acme/etl:1.0"
    worker = f"containers:\n- name: worker\n- name: helper\n  image: {flow_image}\n"
    loaded = load(
        tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml", extra_images=[flow_image]
    )
    assert dc.compile_traced(loaded).extra_images == []  # render lists no container as on another image


def test_adapt_target_duration_reaches_the_scheduler_the_operator_asks(tmp_path):
    import subprocess
    import sys

    loaded = load(
        tmp_path, min_workers=1, max_workers=6, adapt={"target_duration": "2s", "interval": "250ms"}
    )
    # The DaskAutoscaler the runner creates has only minimum and maximum: the scheduler gets the rest.
    cluster = dc.compile_traced(loaded).cluster
    (scheduler,) = cluster["spec"]["scheduler"]["spec"]["containers"]
    assert {"name": dc.TARGET_DURATION_ENV, "value": "2s"} in scheduler["env"]
    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    assert dc.TARGET_DURATION_ENV not in {e["name"] for e in worker.get("env", [])}
    # `dke render --explain` names the line that set it
    origins = dc.compile_traced(loaded).cluster_origins
    k = next(i for i, e in enumerate(scheduler["env"]) if e["name"] == dc.TARGET_DURATION_ENV)
    o = origins[("spec", "scheduler", "spec", "containers", 0, "env", k, "value")]
    assert (o.kind, o.key, o.path) == ("environment", "adapt.target_duration", ("adapt", "target_duration"))
    assert '"target_duration": "2s"' in Path(loaded.file).read_text().splitlines()[o.line - 1]
    # The scheduler's adaptive target (what the operator's /api/v1/adaptive_target returns) reads it.
    probe = "import dask; print(dask.config.get('distributed.adaptive.target-duration'))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, dc.TARGET_DURATION_ENV: "2s"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "2s", out.stderr


@pytest.mark.parametrize(
    "fields",
    [
        {"min_workers": 1, "max_workers": 6},  # unset: Dask's default on Kubernetes
        {"min_workers": 3, "max_workers": 3, "adapt": {"target_duration": "2s"}},  # fixed size
    ],
)
def test_no_target_duration_env_when_unset_or_fixed(tmp_path, fields):
    cluster = dc.compile_traced(load(tmp_path, **fields)).cluster
    (scheduler,) = cluster["spec"]["scheduler"]["spec"]["containers"]
    assert dc.TARGET_DURATION_ENV not in {e["name"] for e in scheduler.get("env", [])}


def test_a_scheduler_spec_setting_the_target_duration_wins(tmp_path):
    spec = f"containers:\n- name: scheduler\n  env:\n  - name: {dc.TARGET_DURATION_ENV}\n    value: 9s\n"
    loaded = load(
        tmp_path,
        specs={"scheduler.yaml": spec},
        scheduler_spec_file="scheduler.yaml",
        max_workers=4,
        adapt={"target_duration": "2s"},
    )
    cluster = dc.compile_traced(loaded).cluster
    (scheduler,) = cluster["spec"]["scheduler"]["spec"]["containers"]
    assert [e["value"] for e in scheduler["env"] if e["name"] == dc.TARGET_DURATION_ENV] == ["9s"]


def test_the_target_duration_goes_to_the_scheduler_container_not_its_sidecars(tmp_path):
    spec = "containers:\n- name: proxy\n- name: scheduler\n"
    loaded = load(
        tmp_path,
        specs={"scheduler.yaml": spec},
        scheduler_spec_file="scheduler.yaml",
        max_workers=4,
        adapt={"target_duration": "2s"},
    )
    containers = dc.compile_traced(loaded).cluster["spec"]["scheduler"]["spec"]["containers"]
    has_it = {c["name"]: dc.TARGET_DURATION_ENV in {e["name"] for e in c.get("env", [])} for c in containers}
    assert has_it == {"proxy": False, "scheduler": True}


# --- mutation testing, second pass: compile's survivors (see tests/README.md, "Mutation testing") ------


def test_where_the_job_s_limits_come_from_when_the_file_sets_them(tmp_path):
    """`dke render --explain` names the line of each job.* value the Job carries."""
    job = {"backoff_limit": 2, "ttl_seconds_after_finished": 600, "active_deadline_seconds": 3600}
    loaded = load(tmp_path, job=job)
    compiled = dc.compile_traced(loaded)
    spec, origins = compiled.objects[-1]["spec"], compiled.origins[-1]
    lines = Path(loaded.file).read_text().splitlines()
    for field, key in (
        ("backoffLimit", "backoff_limit"),
        ("ttlSecondsAfterFinished", "ttl_seconds_after_finished"),
        ("activeDeadlineSeconds", "active_deadline_seconds"),
    ):
        o = origins[("spec", field)]
        assert spec[field] == job[key]
        assert (o.kind, o.key, o.file, o.path) == ("environment", f"job.{key}", loaded.file, ("job", key))
        assert (
            f'"{key}": {job[key]}' in lines[o.line - 1]
            and o.describe() == f"{loaded.file}:{o.line} job.{key}"
        )


def test_the_dask_command_keeps_a_wrapper_in_command_and_drops_a_plain_dask_one(tmp_path):
    # `command: [tini, --]` wraps dask: it stays the container's command, dke's flags go in args
    worker = "containers:\n- name: worker\n  command: [tini, --]\n  args: [dask, worker, --nthreads, '2']\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (container,) = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]["containers"]
    assert container["command"] == ["tini", "--"]
    assert container["args"][:2] == ["dask", "worker"] and container["args"][-2:] == ["--nthreads", "2"]
    # `command: [dask, worker]`: the whole command line goes to args (once), command is dropped
    worker = "containers:\n- name: worker\n  command: [dask, worker]\n  args: [--nthreads, '2']\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (container,) = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]["containers"]
    assert "command" not in container
    assert container["args"] == [*dc.podtemplate.default_args("worker"), "--nthreads", "2"]
    assert validate_objects(loaded, KUBE) == []


def test_a_spec_file_without_a_dask_container_keeps_dke_s(tmp_path):
    worker = "containers:\n- name: side\n  args: [sleep, infinity]\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    dask, side = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]["containers"]
    assert (dask["name"], dask["args"]) == ("worker", dc.podtemplate.default_args("worker"))
    assert (side["name"], side["args"], "command" in side) == ("side", ["sleep", "infinity"], False)


def test_quantities_as_strings_in_every_place_a_pod_has_them():
    pod = {
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": 2.0, "memory": "1Gi"}}}],
        "containers": [
            {"name": "c", "resources": {"limits": {"cpu": 1.5, "nvidia.com/gpu": 1, "flag": True}}},
            {"name": "no-resources"},
            "not a container",
        ],
        "overhead": {"cpu": 0.25, "memory": "120Mi"},
        "volumes": [{"name": "s", "emptyDir": {"sizeLimit": 10**9}}, {"name": "e", "emptyDir": {}}, "x"],
    }
    assert dc.quantities_as_strings(pod) == {
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
        "containers": [
            {"name": "c", "resources": {"limits": {"cpu": "1.5", "nvidia.com/gpu": "1", "flag": True}}},
            {"name": "no-resources"},
            "not a container",
        ],
        "overhead": {"cpu": "0.25", "memory": "120Mi"},
        "volumes": [
            {"name": "s", "emptyDir": {"sizeLimit": "1000000000"}},
            {"name": "e", "emptyDir": {}},
            "x",
        ],
    }
    # a traced quantity keeps its origin
    where = Origin("spec", "x", "w.yaml", 3, 5)
    (c,) = dc.quantities_as_strings(
        {"containers": [{"resources": {"limits": {"cpu": dc.Traced(4.0, where)}}}]}
    )["containers"]
    assert c["resources"]["limits"]["cpu"] == dc.Traced("4", where)


def test_the_environment_s_labels_never_replace_the_labels_dke_selects_by(tmp_path):
    # lint refuses these keys (DKE309); compile holds on its own too, for a caller that skipped it
    loaded = load(tmp_path, labels={"team": "a"})
    loaded.env.labels.update({"app.kubernetes.io/managed-by": "helm", "dke.dev/run-id": "x", "seen": "y"})
    objects = dc.compile_environment(loaded, "r1")
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dke"
        assert obj["metadata"]["labels"]["team"] == "a" and obj["metadata"]["labels"]["seen"] == "y"
    job = objects[-1]
    assert job["metadata"]["labels"]["dke.dev/run-id"] == "r1"
    assert job["spec"]["template"]["metadata"]["labels"]["dke.dev/run-id"] == "r1"
    assert run_spec(job).cluster["metadata"]["labels"]["dke.dev/run-id"] == "r1"


def test_a_secret_or_pull_secret_the_spec_file_names_already_is_not_added_twice(tmp_path):
    worker = (
        "imagePullSecrets: [{name: etl-registry}]\ncontainers:\n- name: worker\n"
        "  envFrom: [{secretRef: {name: db}}, {configMapRef: {name: cfg}}]\n"
    )
    loaded = load(
        tmp_path,
        {"worker.yaml": worker},
        worker_spec_file="worker.yaml",
        secrets=["db", "api"],
        private_registry=True,
    )
    pod = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "etl-registry"}]
    assert pod["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "db"}},
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "api"}},
    ]


def test_dask_written_in_command_after_a_wrapper_moves_to_args(tmp_path):
    worker = "containers:\n- name: worker\n  command: [tini, --, dask, worker]\n  args: [--nthreads, '2']\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (container,) = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]["containers"]
    assert container["command"] == ["tini", "--"]
    assert container["args"] == [*dc.podtemplate.default_args("worker"), "--nthreads", "2"]


def test_env_and_secrets_on_dke_s_containers_and_nothing_else(tmp_path):
    loaded = load(tmp_path, env={"A": "1"}, secrets=["db"])
    compiled = dc.compile_traced(loaded)
    for pod in pods(compiled.objects, compiled.cluster)[1:]:
        (container,) = pod["containers"]
        assert set(container) <= {
            "name",
            "image",
            "args",
            "env",
            "envFrom",
            "ports",
            "readinessProbe",
            "livenessProbe",
        }
        assert container["env"] == [{"name": "A", "value": "1"}]
        assert container["envFrom"] == [{"secretRef": {"name": "db"}}]
    assert validate_objects(loaded, KUBE, compiled) == []


def test_a_spec_file_that_replaces_the_pull_secrets_keeps_its_own_and_gets_dke_s(tmp_path):
    worker = "imagePullSecrets:\n- {$patch: replace}\n- {name: other}\ncontainers:\n- name: worker\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml", private_registry=True)
    pod = dc.compile_traced(loaded).cluster["spec"]["worker"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "other"}, {"name": "etl-registry"}]


def test_compile_refuses_an_environment_that_did_not_validate(tmp_path):
    """A caller that skipped lint gets told what to check, not an AttributeError deep inside."""
    data = {"name": "etl", "image": "ghcr.io/acme/etl:1.0", "flow": {"entrypoint": "flows/flow.py:main"}}
    loaded = load_environment(write_env(tmp_path, {**data, "max_workers": 0}))
    assert not loaded.ok() and loaded.merged is not None  # the file parsed; the model refused it
    with pytest.raises(ValueError, match=r"^compile needs a valid environment \(Loaded\.ok\(\)\)$"):
        dc.compile_traced(loaded)
