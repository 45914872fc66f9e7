"""dke.objects.verify: compiled objects checked offline, each problem at the line its value came from."""

import json
from pathlib import Path

import pytest
from objects_support import load

from dke.diagnostics import ERROR, WARNING
from dke.environment.pipeline import load_environment
from dke.objects import verify
from dke.objects.compile import compile_traced
from dke.objects.provenance import Origin

ROOT = Path(__file__).resolve().parents[2]
KUBE = "1.35"


# --- offline validation: a problem points where its value came from ---------------------------


def test_examples_validate_clean():
    for env in sorted((ROOT / "examples").glob("*/environment.yaml")):
        loaded = load_environment(str(env))
        assert loaded.ok(), loaded.diagnostics
        assert verify.validate_objects(loaded, KUBE) == [], env


def test_problem_from_a_spec_file_points_at_its_line(tmp_path):
    worker = "terminationGracePeriodSeconds: 30\ncontainers:\n- name: worker\n  args: [--nthreads, '2']\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    # A value that only goes wrong after loading (as merge results can): the diagnostic
    # must still name the spec file's own line, not the compiled object.
    loaded.worker.document.data["terminationGracePeriodSeconds"] = "thirty"
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.file.endswith("worker.yaml"), d.line, d.column) == (verify.CLUSTER_INVALID, True, 1, 32)
    assert "DaskCluster etl-run-id" in d.message and "terminationGracePeriodSeconds" in d.message


def test_problem_from_the_environment_points_at_its_key(tmp_path):
    loaded = load(tmp_path, job={"backoff_limit": 1})
    loaded.env.job.backoff_limit = "many"  # as if a future rule let it through the model
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.file.endswith("environment.yaml"), d.path) == (
        verify.OBJECT_INVALID,
        True,
        "$.job.backoff_limit",
    )
    lines = Path(d.file).read_text().splitlines()
    assert '"backoff_limit": 1' in lines[d.line - 1]
    assert "Job etl-run-id at $.spec.backoffLimit" in d.message


def test_spec_file_pod_labels_are_checked_at_their_line(tmp_path):
    worker = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    ok: fine\n    bad: 'has space'\n"
        "  annotations:\n    'no good/x/y': z\nspec: {}\n"
    )
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    problems = verify.validate_objects(loaded, KUBE)
    assert [(d.code, d.line, d.path) for d in problems] == [
        (verify.OBJECT_INVALID, 6, "$.metadata.labels.bad"),
        (verify.OBJECT_INVALID, 8, "$.metadata.annotations['no good/x/y']"),
    ]


# --- what the API server refuses beyond the schema --------------------------------------------


@pytest.mark.parametrize(
    "worker, line, words",
    [
        (
            "containers:\n- name: worker\n  volumeMounts:\n  - {name: scratch, mountPath: /s}\n",
            4,
            "names no volume",
        ),
        (
            "containers:\n- name: worker\n  resources:\n    requests: {memory: 8Gi}\n    limits: {memory: 4Gi}\n",
            4,
            "more than its limit",
        ),
        (
            "containers:\n- name: worker\n  ports:\n  - {name: a-very-long-port-name, containerPort: 9000}\n",
            4,
            "at most 15",
        ),
        (
            "containers:\n- name: worker\n  env:\n  - {name: 1BAD, value: x}\n",
            4,
            "must not start with a digit",
        ),
        ("containers:\n- name: Sidecar_1\n", 2, "must be a DNS label"),
    ],
)
def test_pod_rules_of_the_api_server_point_at_the_spec_line(tmp_path, worker, line, words):
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.file.endswith("worker.yaml"), d.line) == ("DKE214", True, line) and words in d.message


def test_requests_within_limits_pass(tmp_path):
    worker = (
        "containers:\n- name: worker\n  resources:\n    requests: {cpu: 500m, memory: 1Gi}\n"
        "    limits: {cpu: '1', memory: 1024Mi}\n"
    )
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    assert verify.validate_objects(loaded, KUBE) == []


def test_objects_over_the_api_servers_size_limits_are_reported_with_their_size(tmp_path):
    loaded = load(tmp_path, flow={"entrypoint": "flows/flow.py:main", "parameters": {"blob": "x"}})
    loaded.env.flow.parameters["blob"] = "x" * (1600 * 1024)  # environment files are capped below this
    found = [d for d in verify.validate_objects(loaded, KUBE) if d.code == "DKE404"]
    assert found and all("bytes" in d.message and "1.5 MiB" in d.message for d in found)
    loaded = load(tmp_path, annotations={"big": "y" * (300 * 1024)})
    (d, *_) = [d for d in verify.validate_objects(loaded, KUBE) if d.code == "DKE404"]
    assert "256 KiB" in d.message and d.path == "$.annotations.big"


def test_a_numeric_probe_port_is_refused_at_its_line(tmp_path):
    worker = "containers:\n- name: worker\n  livenessProbe:\n    httpGet: {path: /health, port: 8788}\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.file.endswith("worker.yaml"), d.line) == (verify.CLUSTER_INVALID, True, 4)
    assert "name the container port" in d.message


# --- what mutation testing found unchecked (see tests/README.md, "Mutation testing") ----------


def test_a_problem_from_a_default_is_reported_at_the_top_of_the_file(tmp_path):
    loaded = load(tmp_path)
    d = verify.diagnostic_at(loaded, Origin("default", "job.backoff_limit"), "DKE400", "too big", WARNING)
    assert d == type(d)(
        WARNING, "DKE400", "too big (from the default of job.backoff_limit)", loaded.file, 1, 1, "$"
    )
    # from the run (a --run-id, --namespace): at the environment's name
    d = verify.diagnostic_at(loaded, Origin("run", "--namespace"), "DKE400", "bad namespace", WARNING)
    assert (d.severity, d.code, d.message, d.file, d.line, d.path) == (
        WARNING,
        "DKE400",
        "bad namespace",
        loaded.file,
        2,
        "$.name",
    )
    # an origin that names a file only when it has one
    d = verify.diagnostic_at(
        loaded, Origin("environment", "name", None, 5, 3, ("name",)), "DKE400", "no file"
    )
    assert (d.line, d.path) == (2, "$.name")


def test_the_autoscaler_adapt_creates():
    assert verify.autoscaler_for("etl-r1", 1, 4) == {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": "etl-r1"},
        "spec": {"cluster": "etl-r1", "minimum": 1, "maximum": 4},
    }


def test_a_compiled_object_problem_is_an_error_named_after_the_object(tmp_path):
    worker = "terminationGracePeriodSeconds: 30\ncontainers:\n- name: worker\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml", job={"backoff_limit": 1})
    loaded.worker.document.data["terminationGracePeriodSeconds"] = "thirty"
    loaded.env.job.backoff_limit = "many"
    cluster_problem, job_problem = sorted(
        verify.validate_objects(loaded, KUBE), key=lambda d: d.code, reverse=True
    )
    assert (cluster_problem.severity, cluster_problem.code, cluster_problem.path) == (
        ERROR,
        verify.CLUSTER_INVALID,
        "$.terminationGracePeriodSeconds",
    )
    assert cluster_problem.message.startswith(
        "compiled DaskCluster etl-run-id at $.spec.worker.spec.terminationGracePeriodSeconds: "
    )
    assert (job_problem.severity, job_problem.code, job_problem.path) == (
        ERROR,
        verify.OBJECT_INVALID,
        "$.job.backoff_limit",
    )
    assert job_problem.message.startswith("compiled Job etl-run-id at $.spec.backoffLimit: ")


def test_pod_problems_in_full():
    name63 = "c" * 63
    pod = {
        "volumes": [{"name": "data"}, "not a volume"],
        "initContainers": [{"name": "init", "volumeMounts": [{"name": "data"}, {"name": "cache"}]}],
        "containers": [
            {
                "name": name63,
                "ports": [
                    {"name": "http", "containerPort": 1},
                    {"containerPort": 2},
                    {"name": "http", "containerPort": 3},
                    {"name": "a" * 16},
                    {"name": "a--b"},
                    {"name": "123"},
                    {"name": "p" * 15},
                    "not a port",
                ],
                "env": [{"name": "GOOD_1.x-y"}, {"name": "1BAD"}, {"value": "no name"}, "not an env var"],
            },
            {"name": "init"},
            {"name": "c" * 64},
            {"name": "Worker"},
            {"name": None},
            "not a container",
            {
                "name": "res",
                "resources": {
                    "requests": {"cpu": "1500m", "memory": "1Gi", "gpu": "x"},
                    "limits": {"cpu": "1", "memory": "1024Mi", "gpu": "1"},
                },
            },
            {
                "name": "res2",
                "resources": {"requests": {"cpu": "2", "memory": "2Mi"}, "limits": {"cpu": "2000m"}},
            },
        ],
    }
    dns = "must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
    port = "must be at most 15 lowercase letters, digits or single '-', with at least one letter"
    assert verify.pod_problems(pod) == [
        (
            ("initContainers", 0, "volumeMounts", 1, "name"),
            "volumeMount 'cache' names no volume of the pod; add it under `volumes`",
        ),
        (("containers", 0, "ports", 2, "name"), "port name 'http' is used twice in the container"),
        (("containers", 0, "ports", 3, "name"), f"port name '{'a' * 16}' {port}"),
        (("containers", 0, "ports", 4, "name"), f"port name 'a--b' {port}"),
        (("containers", 0, "ports", 5, "name"), f"port name '123' {port}"),
        (
            ("containers", 0, "env", 1, "name"),
            "env name '1BAD' must consist of letters, digits, '_', '-' or '.', and must not start with a digit",
        ),
        (("containers", 1, "name"), "container name 'init' is used twice in the pod; names are unique"),
        (("containers", 2, "name"), f"container name '{'c' * 64}' {dns}"),
        (("containers", 3, "name"), f"container name 'Worker' {dns}"),
        (("containers", 4, "name"), f"container name None {dns}"),
        (
            ("containers", 6, "resources", "requests", "cpu"),
            "the cpu request '1500m' is more than its limit '1'; "
            "a request must be less than or equal to the limit",
        ),
    ]


def test_every_metadata_and_pod_of_every_object_is_checked(tmp_path):
    big = "y" * (300 * 1024)
    specs = {
        f"{role[0]}.yaml": f"kind: Pod\nmetadata:\n  annotations: {{a: {big}}}\n"
        f"spec:\n  containers: [{{name: {role}}}]\n"
        for role in ("scheduler", "worker")
    }
    loaded = load(
        tmp_path, specs, scheduler_spec_file="s.yaml", worker_spec_file="w.yaml", annotations={"big": big}
    )
    loaded.env.env["1BAD"] = "x"  # as if a future rule let it through the model: it reaches every container
    where = sorted((d.code, d.message.split(":")[0]) for d in verify.validate_objects(loaded, KUBE))
    assert where == sorted(
        [
            *[
                ("DKE404", f"compiled {kind} at $.metadata.annotations")
                for kind in (
                    "ServiceAccount etl-runner",
                    "Role etl-runner",
                    "RoleBinding etl-runner",
                    "Job etl-run-id",
                    "DaskCluster etl-run-id",
                )
            ],
            ("DKE404", "compiled Job etl-run-id at $.spec.template.metadata.annotations"),
            ("DKE404", "compiled DaskCluster etl-run-id at $.spec.scheduler.metadata.annotations"),
            ("DKE404", "compiled DaskCluster etl-run-id at $.spec.worker.metadata.annotations"),
            (
                "DKE214",
                "compiled Job etl-run-id at $.spec.template.spec.containers[0].env[6].name",
            ),  # after the run's own
            ("DKE214", "compiled DaskCluster etl-run-id at $.spec.scheduler.spec.containers[0].env[0].name"),
            ("DKE214", "compiled DaskCluster etl-run-id at $.spec.worker.spec.containers[0].env[0].name"),
        ]
    )


# --- tolerations (the runner's job.tolerations and spec files') ----------------------------------------


def test_toleration_rules_of_the_api_server():
    pod = {
        "tolerations": [
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"operator": "Equal", "value": "v"},
            {"value": "v"},
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "tolerationSeconds": 30, "effect": "NoSchedule"},
            {"key": "k", "tolerationSeconds": 30, "effect": "NoExecute"},
            {"key": "k", "operator": "exists", "effect": "Never"},
            "not a toleration",
        ]
    }
    found = verify.pod_problems(pod)
    assert [path for path, _ in found] == [
        ("tolerations", 2, "operator"),
        ("tolerations", 3),
        ("tolerations", 4, "value"),
        ("tolerations", 5, "tolerationSeconds"),
        ("tolerations", 7, "operator"),
        ("tolerations", 7, "effect"),
    ]
    assert (
        found[0][1]
        == "a toleration without a `key` must have `operator: Exists` (it then matches every taint)"
    )
    assert found[4][1] == "toleration operator 'exists' is not one of Exists, Equal"


def test_a_runner_toleration_the_api_server_refuses_points_at_its_line(tmp_path):
    loaded = load(tmp_path, job={"tolerations": [{"operator": "Exists", "value": "x"}]})
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.path, d.file) == (verify.POD_INVALID, "$.job.tolerations[0].value", loaded.file)
    assert d.message.startswith("compiled Job etl-run-id at $.spec.template.spec.tolerations[0].value: ")


def test_a_runner_request_over_its_limit_points_at_the_request(tmp_path):
    loaded = load(tmp_path, job={"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}})
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.code, d.path) == (verify.POD_INVALID, "$.job.resources.requests.memory")
    assert "more than its limit '2Gi'" in d.message


# --- mutation testing, second pass: verify's survivors ------------------------------------------------


def _size(obj) -> int:
    """An object's size as the API server receives it: compact JSON, in bytes."""
    return len(json.dumps(obj, separators=(",", ":")).encode())


def test_an_object_of_exactly_1_5_mib_passes_and_one_byte_more_is_refused_with_its_size(tmp_path):
    loaded = load(tmp_path, flow={"entrypoint": "flows/flow.py:main", "parameters": {"blob": "x"}})
    # environment files are capped below this size: grow the loaded value (each 'x' is one byte of the Job)
    blob = verify.OBJECT_MAX - _size(compile_traced(loaded).objects[-1]) + 1
    loaded.env.flow.parameters["blob"] = "x" * blob
    assert verify.OBJECT_MAX == 1536 * 1024 and _size(compile_traced(loaded).objects[-1]) == verify.OBJECT_MAX
    assert [d for d in verify.validate_objects(loaded, KUBE) if d.code == verify.TOO_LARGE] == []
    loaded.env.flow.parameters["blob"] = "x" * (blob + 1)
    (d,) = [d for d in verify.validate_objects(loaded, KUBE) if d.code == verify.TOO_LARGE]
    assert (d.severity, d.file, d.line, d.path) == (ERROR, loaded.file, 2, "$.name")  # dke wrote the Job
    assert d.message == (
        "compiled Job etl-run-id at $: is 1572865 bytes; the API server stores objects of at most "
        "1572864 bytes (1.5 MiB): move large values (parameters, env) to a ConfigMap or into the image"
    )


def test_annotations_of_exactly_256_kib_pass_and_one_byte_more_is_refused_counting_bytes(tmp_path):
    # key and value count, in UTF-8 bytes: 'big' (3) + 100 'é' (2 each) + 261941 'x' = 262144
    def problems(value):
        loaded = load(tmp_path, annotations={"big": value}, job={"safe_to_evict": True})
        return [d for d in verify.validate_objects(loaded, KUBE) if d.code == verify.TOO_LARGE], loaded

    at_limit = "é" * 100 + "x" * 261941
    assert verify.ANNOTATIONS_MAX == 256 * 1024 and problems(at_limit)[0] == []
    found, loaded = problems(at_limit + "x")
    where = {d.message.split(":")[0] for d in found}
    assert where == {
        f"compiled {kind} at $.metadata.annotations"
        for kind in (
            "ServiceAccount etl-runner",
            "Role etl-runner",
            "RoleBinding etl-runner",
            "Job etl-run-id",
            "DaskCluster etl-run-id",
        )
    } | {"compiled Job etl-run-id at $.spec.template.metadata.annotations"}
    assert all((d.severity, d.file, d.path) == (ERROR, loaded.file, "$.annotations.big") for d in found)
    assert found[0].message.split(": ", 1)[1] == (
        "annotations total 262145 bytes; the API server allows 262144 bytes (256 KiB)"
    )


def test_a_numeric_probe_port_message_in_full(tmp_path):
    worker = "containers:\n- name: worker\n  readinessProbe:\n    tcpSocket: {port: 8786}\n"
    loaded = load(tmp_path, {"worker.yaml": worker}, worker_spec_file="worker.yaml")
    (d,) = verify.validate_objects(loaded, KUBE)
    assert (d.severity, d.code, d.line, d.column, d.path) == (
        ERROR,
        verify.CLUSTER_INVALID,
        4,
        23,
        "$.containers[0].readinessProbe.tcpSocket.port",
    )
    assert d.message == (
        "compiled DaskCluster etl-run-id at $.spec.worker.spec.containers[0].readinessProbe.tcpSocket.port: "
        "port 8786 as a number: the Dask operator's CRDs, as installed on clusters, take this port as a string "
        "(dask/dask-kubernetes#778), so the API server would refuse the DaskCluster; name the container port "
        "(ports: [{name: http, containerPort: 8786}]) and write its name here"
    )


def test_toleration_messages_in_full_and_empty_fields_as_their_defaults():
    pod = {
        "tolerations": [
            {"key": "k", "operator": "", "effect": ""},  # empty: the defaults (Equal, every effect)
            {"key": "k", "operator": "Exists", "value": "v"},
            {"key": "k", "tolerationSeconds": 0, "effect": "NoSchedule"},  # zero is a value too
            {"key": "k", "effect": "Never"},
            {"operator": "Equal"},
        ]
    }
    assert verify.pod_problems(pod) == [
        (("tolerations", 1, "value"), "a toleration with `operator: Exists` must not have a `value`"),
        (
            ("tolerations", 2, "tolerationSeconds"),
            "`tolerationSeconds` only applies with `effect: NoExecute`; set that effect or remove it",
        ),
        (
            ("tolerations", 3, "effect"),
            "toleration effect 'Never' is not one of NoSchedule, PreferNoSchedule, NoExecute",
        ),
        (
            ("tolerations", 4, "operator"),
            "a toleration without a `key` must have `operator: Exists` (it then matches every taint)",
        ),
    ]


def test_objects_are_checked_against_the_kubernetes_version_asked_for(tmp_path):
    loaded = load(tmp_path)
    compiled = compile_traced(loaded)
    compiled.objects[-1]["spec"]["managedBy"] = "example.com/queue"  # a Job field since Kubernetes 1.30
    assert verify.validate_objects(loaded, "1.30", compiled) == []
    (d,) = verify.validate_objects(loaded, "1.29", compiled)
    assert (d.code, d.file, d.path) == (verify.OBJECT_INVALID, loaded.file, "$.name")  # dke wrote it
    assert d.message.startswith("compiled Job etl-run-id at $.spec.managedBy: unknown key 'managedBy'")


def test_a_schema_problem_in_a_default_value_is_reported_at_the_top_of_the_file(tmp_path):
    loaded = load(tmp_path, max_workers=3)
    # as if a future rule let them through the model: values the file does not set (defaults)
    loaded.env.job.backoff_limit = "many"
    loaded.env.min_workers = 1.5
    found = {d.message.split(":")[0]: d for d in verify.validate_objects(loaded, KUBE)}
    job = found["compiled Job etl-run-id at $.spec.backoffLimit"]
    cluster = found["compiled DaskCluster etl-run-id at $.spec.worker.replicas"]
    autoscaler = found["compiled DaskAutoscaler etl-run-id at $.spec.minimum"]
    assert (job.code, job.file, job.line, job.column, job.path) == (
        verify.OBJECT_INVALID,
        loaded.file,
        1,
        1,
        "$",
    )
    assert job.message.endswith("(from the default of job.backoff_limit)")
    assert (cluster.code, cluster.file, cluster.line, cluster.path) == (
        verify.CLUSTER_INVALID,
        loaded.file,
        1,
        "$",
    )
    assert cluster.message.endswith("(from the default of min_workers)")
    # the autoscaler adapt() creates is not in the output: its problems point at the environment's name
    assert (autoscaler.severity, autoscaler.code, autoscaler.file, autoscaler.path) == (
        ERROR,
        verify.CLUSTER_INVALID,
        loaded.file,
        "$.name",
    )


def test_a_fixed_size_cluster_has_no_autoscaler_to_check(tmp_path):
    loaded = load(tmp_path, min_workers=2, max_workers=2)
    loaded.env.min_workers = loaded.env.max_workers = 2.5  # as if a future rule let it through the model
    kinds = {d.message.split(" at ")[0] for d in verify.validate_objects(loaded, KUBE)}
    assert kinds == {"compiled DaskCluster etl-run-id"}  # adapt() is not called: no DaskAutoscaler


def test_pod_rules_skip_what_the_schema_already_refused():
    """These checks also run on objects the schema check refused: malformed parts are skipped, not a crash."""
    pod = {
        "containers": [
            {"name": "a", "resources": {"requests": "1", "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "2"}, "limits": "1"}},
        ],
        "tolerations": ["not a toleration", {"operator": "Exists", "value": "v"}],
    }
    assert verify.pod_problems(pod) == [
        (("tolerations", 1, "value"), "a toleration with `operator: Exists` must not have a `value`")
    ]
