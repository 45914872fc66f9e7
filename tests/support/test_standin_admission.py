"""tests/support/standin_admission.py: what the stand-in API server refuses (wording of Kubernetes 1.31) and its SSA."""

from __future__ import annotations

import copy
import json

import pytest
import standin_admission as sa

NS = "default"


def deployment(**pod) -> dict:
    spec = {"containers": [{"name": "c", "image": "busybox:1"}], **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
        },
    }


def job(**pod) -> dict:
    spec = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}], **pod}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "run", "namespace": NS, "uid": "u-1"},
        "spec": {"template": {"spec": spec}},
    }


def pod(**spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec},
    }


def service(ports, **meta) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": NS, **meta},
        "spec": {"selector": {"app": "web"}, "ports": ports},
    }


def message(obj, old=None, op="CREATE") -> str:
    causes = sa.admit(op, obj, old)
    assert causes, "expected a refusal"
    return sa.invalid_status(obj, causes)["message"]


def fields(obj, old=None, op="CREATE") -> list[str]:
    return [c["field"] for c in sa.admit(op, obj, old)]


# --- the Status body -----------------------------------------------------------------------------------


def test_a_deployment_pod_template_with_restart_policy_never_is_refused_in_the_api_servers_words():
    obj = deployment(restartPolicy="Never")
    status = sa.invalid_status(obj, sa.admit("CREATE", obj, None))
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Deployment.apps "web" is invalid: spec.template.spec.restartPolicy: '
        'Unsupported value: "Never": supported values: "Always"',
        "reason": "Invalid",
        "details": {
            "name": "web",
            "group": "apps",
            "kind": "Deployment",
            "causes": [
                {
                    "reason": "FieldValueNotSupported",
                    "message": 'Unsupported value: "Never": supported values: "Always"',
                    "field": "spec.template.spec.restartPolicy",
                }
            ],
        },
        "code": 422,
    }
    assert sa.admit("CREATE", deployment(restartPolicy="Always"), None) == []
    assert sa.admit("CREATE", deployment(), None) == []  # defaulted to Always


def test_several_errors_are_bracketed_and_repeated_messages_dropped_and_core_kinds_have_no_group():
    obj = pod(containers=[{"name": "A", "image": "i"}, {"name": "A", "image": "i"}])
    status = sa.invalid_status(obj, sa.admit("CREATE", obj, None))
    assert "group" not in status["details"] and status["details"]["kind"] == "Pod"
    assert status["message"].startswith(
        'Pod "p" is invalid: [spec.containers[0].name: Invalid value: "A": a lowercase RFC 1123 label'
    )
    assert status["message"].endswith(', spec.containers[1].name: Duplicate value: "A"]')
    # the second container's name error repeats the first one's text with another field: both kept
    assert status["message"].count("a lowercase RFC 1123 label") == 2
    twice = [sa.required("spec.x"), sa.required("spec.x")]
    assert sa.invalid_status(obj, twice)["message"] == 'Pod "p" is invalid: spec.x: Required value'
    assert len(sa.invalid_status(obj, twice)["details"]["causes"]) == 2


# --- names -------------------------------------------------------------------------------------------

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_object_names_are_dns_subdomains_for_deployments():
    obj = deployment()
    obj["metadata"]["name"] = "Web_1"
    assert (
        message(obj)
        == f'Deployment.apps "Web_1" is invalid: metadata.name: Invalid value: "Web_1": {SUBDOMAIN_MSG}'
    )
    obj["metadata"]["name"] = "web.v1"
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["name"] = "a" * 254
    assert (
        'metadata.name: Invalid value: "' + "a" * 254 + '": must be no more than 253 characters'
        in message(obj)
    )


def test_service_names_are_dns_1035_labels():
    assert sa.admit("CREATE", service([{"port": 80}]), None) == []
    obj = service([{"port": 80}])
    obj["metadata"]["name"] = "1svc"
    assert message(obj) == (
        'Service "1svc" is invalid: metadata.name: Invalid value: "1svc": a DNS-1035 label must consist of lower '
        "case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
        "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_namespaces_are_dns_labels_and_cluster_scoped():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    assert sa.admit("CREATE", ns, None) == []
    assert fields({**ns, "metadata": {"name": "team.a"}}) == ["metadata.name"]
    assert message({**ns, "metadata": {"name": "x", "namespace": "y"}}) == (
        'Namespace "x" is invalid: metadata.namespace: Forbidden: not allowed on this type'
    )


def test_generate_name_may_end_in_a_dash_but_a_name_or_generate_name_is_required():
    obj = deployment()
    obj["metadata"] = {"generateName": "web-", "namespace": NS}
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"] = {"generateName": "Web-", "namespace": NS}
    assert fields(obj) == ["metadata.generateName"]
    obj["metadata"] = {"namespace": NS}
    assert (
        message(obj)
        == 'Deployment.apps "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_namespaced_objects_need_a_namespace():
    obj = deployment()
    del obj["metadata"]["namespace"]
    assert message(obj) == 'Deployment.apps "web" is invalid: metadata.namespace: Required value'


# --- labels and annotations ------------------------------------------------------------------------


def test_label_keys_and_values():
    obj = deployment()
    obj["metadata"]["labels"] = {"example.com/team": "data_1", "app": ""}
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["labels"] = {"bad key": "v"}
    assert message(obj) == (
        'Deployment.apps "web" is invalid: metadata.labels: Invalid value: "bad key": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    obj["metadata"]["labels"] = {"k": "x" * 64}
    assert (
        'metadata.labels: Invalid value: "' + "x" * 64 + '": must be no more than 63 characters'
        in message(obj)
    )
    obj["metadata"]["labels"] = {"Example.com/k": "v"}
    assert "prefix part a lowercase RFC 1123 subdomain" in message(obj)


def test_pod_template_labels_are_reported_at_template_labels():
    obj = deployment()
    obj["spec"]["template"]["metadata"]["labels"]["bad/"] = "v"
    obj["spec"]["selector"]["matchLabels"] = {"app": "web"}
    assert "spec.template.labels" in fields(obj)


def test_annotations_keys_are_case_insensitive_qualified_names_and_total_at_most_256_kib():
    obj = deployment()
    obj["metadata"]["annotations"] = {"Example.COM/Owner": "me"}
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["annotations"] = {"a": "x" * (256 * 1024 - 1)}
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["annotations"] = {"a": "x" * (256 * 1024)}
    assert (
        message(obj)
        == 'Deployment.apps "web" is invalid: metadata.annotations: Too long: must have at most 262144 bytes'
    )
    obj["metadata"]["annotations"] = {"a/b/c": "v"}
    assert fields(obj) == ["metadata.annotations"]


# --- ownerReferences ---------------------------------------------------------------------------------


def owner(**fields_) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "name": "run", "uid": "u-1", **fields_}


def test_owner_references_need_api_version_kind_name_uid_and_at_most_one_controller():
    obj = deployment()
    obj["metadata"]["ownerReferences"] = [owner(controller=True, blockOwnerDeletion=True)]
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["ownerReferences"] = [owner(uid="", apiVersion="batch/")]
    assert message(obj) == (
        'Deployment.apps "web" is invalid: [metadata.ownerReferences.apiVersion: Invalid value: '
        '"batch/": version must not be empty, metadata.ownerReferences.uid: Invalid value: "": '
        "must not be empty]"
    )
    obj["metadata"]["ownerReferences"] = [
        owner(controller=True),
        owner(name="other", uid="u-2", controller=True),
    ]
    causes = sa.admit("CREATE", obj, None)
    assert [c["field"] for c in causes] == ["metadata.ownerReferences"]
    assert causes[0]["message"].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for Job/run and Job/other'
    )


# --- pod specs -------------------------------------------------------------------------------------


def test_container_names_are_unique_across_containers_and_init_containers():
    ok = pod(initContainers=[{"name": "init", "image": "i"}])
    assert sa.admit("CREATE", ok, None) == []
    obj = pod(initContainers=[{"name": "c", "image": "i"}])
    assert message(obj) == 'Pod "p" is invalid: spec.initContainers[0].name: Duplicate value: "c"'


def test_port_names_are_iana_service_names_unique_per_container_and_ports_in_range():
    obj = pod(
        containers=[
            {
                "name": "c",
                "image": "i",
                "ports": [
                    {"name": "tcp-comm", "containerPort": 8786},
                    {"name": "http-dashboard", "containerPort": 8787},
                ],
            }
        ]
    )
    assert sa.admit("CREATE", obj, None) == []
    obj["spec"]["containers"][0]["ports"][1]["name"] = "tcp-comm"
    assert message(obj) == 'Pod "p" is invalid: spec.containers[0].ports[1].name: Duplicate value: "tcp-comm"'
    obj["spec"]["containers"][0]["ports"][1]["name"] = "http-dashboard-long"  # 19 > 15
    assert message(obj) == (
        'Pod "p" is invalid: spec.containers[0].ports[1].name: Invalid value: '
        '"http-dashboard-long": must be no more than 15 characters'
    )
    obj["spec"]["containers"][0]["ports"][1] = {"containerPort": 70000}
    assert message(obj) == (
        'Pod "p" is invalid: spec.containers[0].ports[1].containerPort: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive"
    )
    obj["spec"]["containers"][0]["ports"][1] = {"containerPort": 1, "name": "80"}
    assert message(obj).endswith('Invalid value: "80": must contain at least one letter (a-z)')


def test_env_var_names_as_the_server_allows_before_1_32():
    obj = pod(containers=[{"name": "c", "image": "i", "env": [{"name": "my.env-name_1", "value": "v"}]}])
    assert sa.admit("CREATE", obj, None) == []
    obj["spec"]["containers"][0]["env"][0]["name"] = "1BAD"
    assert message(obj) == (
        'Pod "p" is invalid: spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable '
        "name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit "
        "(e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
        "'[-._a-zA-Z][-._a-zA-Z0-9]*')"
    )
    # RelaxedEnvironmentVariableValidation is on from 1.32: any printable ASCII but '='
    assert sa.admit("CREATE", obj, None, kube_version="1.32") == []
    obj["spec"]["containers"][0]["env"][0]["name"] = "A=B"
    assert [c["field"] for c in sa.admit("CREATE", obj, None, kube_version="1.32")] == [
        "spec.containers[0].env[0].name"
    ]


def test_env_value_from_needs_exactly_one_source_and_no_value():
    def env(entry):
        return pod(containers=[{"name": "c", "image": "i", "env": [{"name": "A", **entry}]}])

    assert (
        sa.admit("CREATE", env({"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}), None) == []
    )
    both = env(
        {"valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}
    )
    assert message(both) == (
        'Pod "p" is invalid: spec.containers[0].env[0].valueFrom: Invalid value: "": '
        "may not have more than one field specified at a time"
    )
    with_value = env({"value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    assert message(with_value).endswith("may not be specified when `value` is not empty")
    none = env({"valueFrom": {}})
    assert message(none).endswith(
        "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
    )
    bad_path = env({"valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}})
    assert fields(bad_path) == ["spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"]


def test_volume_names_are_unique_and_every_mount_names_a_volume():
    mount = [{"name": "data", "mountPath": "/data"}]
    ok = pod(
        volumes=[{"name": "data", "emptyDir": {}}],
        containers=[{"name": "c", "image": "i", "volumeMounts": mount}],
    )
    assert sa.admit("CREATE", ok, None) == []
    dup = copy.deepcopy(ok)
    dup["spec"]["volumes"].append({"name": "data", "emptyDir": {}})
    assert message(dup) == 'Pod "p" is invalid: spec.volumes[1].name: Duplicate value: "data"'
    missing = copy.deepcopy(ok)
    missing["spec"]["volumes"] = []
    assert (
        message(missing) == 'Pod "p" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "data"'
    )
    assert sa.admit("CREATE", missing, None)[0]["reason"] == "FieldValueNotFound"


def test_restart_policy_per_owner_kind():
    assert sa.admit("CREATE", pod(restartPolicy="Never"), None) == []
    assert message(pod(restartPolicy="Sometimes")) == (
        'Pod "p" is invalid: spec.restartPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "OnFailure", "Never"'
    )
    assert sa.admit("CREATE", job(restartPolicy="OnFailure"), None) == []
    assert message(job(restartPolicy="Always")) == (
        'Job.batch "run" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    )
    no_policy = job()
    del no_policy["spec"]["template"]["spec"]["restartPolicy"]
    assert fields(no_policy) == ["spec.template.spec.restartPolicy"]
    rs = deployment(restartPolicy="OnFailure")
    rs["kind"] = "ReplicaSet"
    assert message(rs).startswith(
        'ReplicaSet.apps "web" is invalid: spec.template.spec.restartPolicy: Unsupported value: "OnFailure"'
    )


def test_active_deadline_seconds_is_forbidden_in_deployment_templates_but_fine_in_jobs():
    assert message(deployment(activeDeadlineSeconds=60)) == (
        'Deployment.apps "web" is invalid: spec.template.spec.activeDeadlineSeconds: Forbidden: '
        "activeDeadlineSeconds in ReplicaSet is not Supported"
    )
    assert sa.admit("CREATE", job(activeDeadlineSeconds=60), None) == []


def test_deployment_selector_is_required_and_must_match_the_template_labels():
    obj = deployment()
    del obj["spec"]["selector"]
    assert message(obj) == 'Deployment.apps "web" is invalid: spec.selector: Required value'
    obj = deployment()
    obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert message(obj) == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"web"}: `selector` does not match template `labels`'
    )
    obj["spec"]["selector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]
    }
    assert sa.admit("CREATE", obj, None) == []
    obj["spec"]["selector"] = {}
    assert message(obj).endswith(": empty selector is invalid for deployment")


def test_resource_requests_at_most_limits_and_quantities_valid():
    def res(r):
        return pod(containers=[{"name": "c", "image": "i", "resources": r}])

    assert (
        sa.admit(
            "CREATE",
            res({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 1, "memory": "1024Mi"}}),
            None,
        )
        == []
    )
    assert message(res({"requests": {"memory": "2Gi"}, "limits": {"memory": "1536Mi"}})) == (
        'Pod "p" is invalid: spec.containers[0].resources.requests: Invalid value: "2Gi": '
        "must be less than or equal to memory limit of 1536Mi"
    )
    assert message(res({"requests": {"cpu": "1500m"}, "limits": {"cpu": "1"}})).endswith(
        'Invalid value: "1500m": must be less than or equal to cpu limit of 1'
    )
    assert fields(res({"limits": {"cpu": "lots"}})) == ["spec.containers[0].resources.limits[cpu]"]
    assert fields(res({"limits": {"gpu": "1"}})) == ["spec.containers[0].resources.limits[gpu]"]


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("2000", "2k"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("1e3", "1e3"),
        ("0.1", "100m"),
    ],
)
def test_quantities_print_in_their_canonical_form(text, canonical):
    assert sa.format_quantity(*sa.parse_quantity(text)) == canonical


# --- Jobs: defaulting, generated selector, immutable fields -----------------------------------------


def test_default_object_generates_a_jobs_selector_and_labels_as_the_registry_does():
    obj = sa.default_object(job())
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "run",
        "controller-uid": "u-1",
        "job-name": "run",
    }
    assert obj["spec"]["backoffLimit"] == 6 and obj["spec"]["completions"] == 1
    assert sa.default_object(copy.deepcopy(obj)) == obj  # idempotent
    manual = job()
    manual["spec"]["manualSelector"] = True
    assert "selector" not in sa.default_object(manual)["spec"]


def test_a_job_selector_that_was_not_generated_is_refused():
    obj = job()
    obj["spec"]["selector"] = {"matchLabels": {"app": "x"}}
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    assert "spec.selector" in fields(obj)
    assert any(c["message"].endswith("`selector` not auto-generated") for c in sa.admit("CREATE", obj, None))
    obj["spec"]["manualSelector"] = True
    assert sa.admit("CREATE", obj, None) == []


def test_a_job_name_too_long_for_its_job_name_label_is_refused():
    obj = job()
    obj["metadata"]["name"] = "r" * 64
    assert "spec.template.labels" in fields(obj)


def test_a_jobs_template_and_selector_are_immutable():
    old = sa.default_object(job())
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    causes = sa.admit("UPDATE", new, old)
    assert [c["field"] for c in causes] == ["spec.template"]
    assert causes[0]["message"].endswith(": field is immutable")
    same = copy.deepcopy(old)
    same["spec"]["suspend"] = True  # mutable
    assert sa.admit("UPDATE", same, old) == []
    sel = copy.deepcopy(old)
    sel["spec"]["selector"]["matchLabels"]["extra"] = "x"
    sel["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    assert "spec.selector" in fields(sel, old, "UPDATE")


def test_a_deployments_selector_is_immutable_with_gos_rendering():
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert message(new, old, "UPDATE") == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"web", "tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: '
        "field is immutable"
    )
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 4
    assert sa.admit("UPDATE", scaled, old) == []


def test_metadata_name_namespace_uid_are_immutable_and_service_cluster_ip_may_not_change():
    old = deployment()
    old["metadata"]["uid"] = "u-1"
    new = copy.deepcopy(old)
    new["metadata"]["uid"] = "u-2"
    assert fields(new, old, "UPDATE") == ["metadata.uid"]
    svc_old = service([{"port": 80}])
    svc_old["spec"]["clusterIP"] = "10.96.0.10"
    svc_new = copy.deepcopy(svc_old)
    svc_new["spec"]["clusterIP"] = "10.96.0.11"
    assert message(svc_new, svc_old, "UPDATE") == (
        'Service "svc" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set'
    )
    del svc_new["spec"]["clusterIP"]  # omitted: the server keeps the allocated one
    assert sa.admit("UPDATE", svc_new, svc_old) == []


# --- Services ----------------------------------------------------------------------------------------


def test_service_ports_need_unique_names_when_several_and_valid_target_ports():
    ok = service(
        [
            {"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"},
            {"name": "http-dashboard", "port": 8787, "targetPort": 8787},
        ]
    )
    assert sa.admit("CREATE", ok, None) == []
    unnamed = service([{"port": 8786}, {"name": "b", "port": 8787}])
    assert message(unnamed) == 'Service "svc" is invalid: spec.ports[0].name: Required value'
    dup = service([{"name": "a", "port": 1}, {"name": "a", "port": 2}])
    assert message(dup) == 'Service "svc" is invalid: spec.ports[1].name: Duplicate value: "a"'
    bad_target = service([{"port": 80, "targetPort": "-a--b"}])
    assert fields(bad_target) == ["spec.ports[0].targetPort"] * 2
    assert fields(service([])) == ["spec.ports"]


# --- schema ------------------------------------------------------------------------------------------


def test_unknown_fields_are_refused_under_strict_and_pruned_otherwise():
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = "x"
    assert message(obj) == (
        'Deployment.apps "web" is invalid: spec.template.spec.containers[0].imagePolicy: '
        "field not declared in schema"
    )
    assert sa.admit("CREATE", obj, None, field_validation="Warn") == []
    pruned, removed = sa.prune_unknown(obj)
    assert removed == ["spec.template.spec.containers[0].imagePolicy"]
    assert "imagePolicy" not in pruned["spec"]["template"]["spec"]["containers"][0]


def test_wrong_types_and_missing_required_fields_name_the_field():
    obj = deployment()
    obj["spec"]["replicas"] = "two"
    causes = sa.admit("CREATE", obj, None)
    assert causes == [
        {
            "reason": "FieldValueTypeInvalid",
            "field": "spec.replicas",
            "message": 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        }
    ]
    nameless = pod(containers=[{"image": "i"}])
    assert "spec.containers[0].name" in fields(nameless)


def test_null_fields_are_treated_as_absent_like_go_decoding_does():
    obj = deployment()
    obj["metadata"]["creationTimestamp"] = None
    obj["spec"]["template"]["metadata"]["creationTimestamp"] = None
    assert sa.admit("CREATE", obj, None) == []


def dask_cluster(**worker) -> dict:
    podspec = {
        "containers": [{"name": "worker", "image": "ghcr.io/dask/dask:latest", "args": ["dask", "worker"]}]
    }
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskCluster",
        "metadata": {"name": "dc", "namespace": NS},
        "spec": {
            "scheduler": {
                "spec": copy.deepcopy(podspec),
                "service": {"ports": [{"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"}]},
            },
            "worker": {"replicas": 1, "spec": podspec, **worker},
        },
    }


def test_dask_custom_resources_are_validated_against_their_crd_schema():
    assert sa.admit("CREATE", dask_cluster(), None) == []
    assert message(dask_cluster(replicas="3")) == (
        'DaskCluster.kubernetes.dask.org "dc" is invalid: spec.worker.replicas: Invalid value: "string": '
        'spec.worker.replicas in body must be of type integer: "string"'
    )
    no_spec = dask_cluster()
    del no_spec["spec"]["worker"]["spec"]
    assert (
        message(no_spec)
        == 'DaskCluster.kubernetes.dask.org "dc" is invalid: spec.worker.spec: Required value'
    )
    # the CRD's int-or-string fields are `type: string` (format int-or-string is stripped): an integer is refused
    int_target = dask_cluster()
    int_target["spec"]["scheduler"]["service"]["ports"][0]["targetPort"] = 8786
    assert message(int_target).endswith(
        'spec.scheduler.service.ports[0].targetPort in body must be of type string: "integer"'
    )
    # pruning, not refusing, is what happens to status fields the CRD does not declare under Warn
    with_status = dask_cluster()
    with_status["status"] = {"phase": "Running", "kopf": {"progress": {}}}
    assert sa.admit("UPDATE", with_status, dask_cluster(), field_validation="Warn") == []
    assert sa.unknown_fields(with_status) == ["status.kopf"]
    bad_name = dask_cluster()
    bad_name["metadata"]["name"] = "DC"
    assert fields(bad_name) == ["metadata.name"]


def test_an_object_over_etcds_limit_is_refused():
    obj = pod(
        containers=[{"name": "c", "image": "i", "env": [{"name": "BIG", "value": "x" * (1600 * 1024)}]}]
    )
    assert sa.size_status(obj)["message"] == "etcdserver: request is too large"
    assert fields(obj) == [""]
    obj["spec"]["containers"][0]["env"][0]["value"] = "x" * (1400 * 1024)
    assert sa.size_status(obj) is None and sa.admit("CREATE", obj, None) == []


# --- server-side apply ---------------------------------------------------------------------------------

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"


def applied(replicas=2, env=True) -> dict:
    obj = deployment()
    obj["metadata"]["labels"] = {"app": "web"}
    obj["spec"]["replicas"] = replicas
    c = obj["spec"]["template"]["spec"]["containers"][0]
    c["ports"] = [{"name": "http", "containerPort": 80}]
    if env:
        c["env"] = [{"name": "A", "value": "1"}]
    return obj


def test_apply_creates_with_managed_fields_in_fieldsv1_notation():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    [entry] = live["metadata"]["managedFields"]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "dke",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
    }
    container = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container == {
        ".": {},
        "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
        "f:image": {},
        "f:name": {},
        "f:ports": {
            'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}, "f:name": {}}
        },
    }
    assert entry["fieldsV1"]["f:spec"]["f:selector"] == {}  # an atomic struct is one leaf
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}


def test_reapplying_the_same_object_changes_nothing():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    assert sa.server_side_apply(live, applied(), "dke", False, T1) == live


def test_a_conflict_with_another_manager_is_a_409_in_the_servers_words():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 3},
    }
    with pytest.raises(sa.Conflict) as err:
        sa.server_side_apply(live, other, "autoscaler", False, T1)
    assert err.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "dke": .spec.replicas',
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "dke"',
                    "field": ".spec.replicas",
                }
            ]
        },
        "code": 409,
    }
    # the same value is shared ownership, not a conflict
    other["spec"]["replicas"] = 2
    shared = sa.server_side_apply(live, other, "autoscaler", False, T1)
    assert [e["manager"] for e in shared["metadata"]["managedFields"]] == ["dke", "autoscaler"]


def test_several_conflicts_are_listed_per_manager():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    other = applied(replicas=5)
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    with pytest.raises(sa.Conflict) as err:
        sa.server_side_apply(live, other, "ci", False, T1)
    assert err.value.status()["message"] == (
        'Apply failed with 2 conflicts: conflicts with "dke":\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="c"].image'
    )


def test_force_moves_ownership():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": 3},
    }
    forced = sa.server_side_apply(live, other, "autoscaler", True, T1)
    assert forced["spec"]["replicas"] == 3
    dke, auto = forced["metadata"]["managedFields"]
    assert "f:replicas" not in dke["fieldsV1"]["f:spec"] and auto["fieldsV1"] == {
        "f:spec": {"f:replicas": {}}
    }
    # dke applying again without replicas no longer touches them
    again = applied()
    del again["spec"]["replicas"]
    assert sa.server_side_apply(forced, again, "dke", False, T2)["spec"]["replicas"] == 3


def test_fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    dropped = sa.server_side_apply(live, applied(env=False), "dke", False, T1)
    assert "env" not in dropped["spec"]["template"]["spec"]["containers"][0]
    assert dropped["metadata"]["managedFields"][0]["time"] == T1
    # co-owned: another manager applied the same env var, so it stays
    other = applied()
    shared = sa.server_side_apply(live, other, "other", False, T1)
    kept = sa.server_side_apply(shared, applied(env=False), "dke", False, T2)
    assert kept["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_lists_with_merge_keys_merge_and_other_lists_are_atomic():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"template": {"spec": {"containers": [{"name": "side", "image": "envoy", "args": ["a"]}]}}},
    }
    merged = sa.server_side_apply(live, sidecar, "mesh", False, T1)
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["c", "side"]
    sidecar["spec"]["template"]["spec"]["containers"][0]["args"] = ["b", "c"]
    replaced = sa.server_side_apply(merged, sidecar, "mesh", False, T2)
    assert replaced["spec"]["template"]["spec"]["containers"][1]["args"] == ["b", "c"]


def test_record_write_gives_the_writer_what_it_changed_and_takes_it_from_others():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    out = sa.record_write(live, scaled, "kubectl-scale", T1)
    dke, scale = out["metadata"]["managedFields"]
    assert scale == {
        "manager": "kubectl-scale",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    assert "f:replicas" not in dke["fieldsV1"]["f:spec"]
    with pytest.raises(sa.Conflict) as err:
        sa.server_side_apply(out, applied(), "dke", False, T2)
    assert err.value.status()["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas'
    )


def test_record_write_on_create_owns_everything_and_marks_maps():
    created = sa.record_write(None, deployment(), "kr8s", T0)
    [entry] = created["metadata"]["managedFields"]
    assert entry["operation"] == "Update" and entry["manager"] == "kr8s"
    assert entry["fieldsV1"]["f:spec"]["f:template"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    json.dumps(created)  # stays JSON


def test_a_pods_spec_is_immutable_but_for_images_a_shorter_deadline_and_added_tolerations():
    old = sa.default_object(pod(activeDeadlineSeconds=60, tolerations=[{"key": "a", "operator": "Exists"}]))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:2"
    new["spec"]["activeDeadlineSeconds"] = 30
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    new["metadata"]["labels"] = {"phase": "two"}
    assert sa.admit("UPDATE", new, old) == []
    longer = copy.deepcopy(old)
    longer["spec"]["activeDeadlineSeconds"] = 90
    assert message(longer, old, "UPDATE") == (
        'Pod "p" is invalid: spec.activeDeadlineSeconds: Invalid value: 90: must be less than or equal to previous value'
    )
    ports = copy.deepcopy(old)
    ports["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    causes = sa.admit("UPDATE", ports, old)
    assert [c["field"] for c in causes] == ["spec"]
    assert causes[0]["message"].startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n  core.PodSpec{"
    )


def test_finalizers_are_qualified_names_reported_without_an_index():
    obj = deployment()
    obj["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker", "foregroundDeletion"]
    assert sa.admit("CREATE", obj, None) == []
    obj["metadata"]["finalizers"] = ["bad finalizer"]
    assert fields(obj) == ["metadata.finalizers"]
    obj["metadata"]["finalizers"] = ["orphan", "foregroundDeletion"]
    assert message(obj).endswith("finalizer orphan and foregroundDeletion cannot be both set")


def test_daemonsets_and_statefulsets_take_only_always_and_no_deadline():
    ds = deployment(activeDeadlineSeconds=5)
    ds["kind"] = "DaemonSet"
    assert message(ds) == (
        'DaemonSet.apps "web" is invalid: spec.template.spec.activeDeadlineSeconds: Invalid value: 5: '
        "activeDeadlineSeconds must be nil for daemons"
    )
    ss = deployment(restartPolicy="Never")
    ss["kind"] = "StatefulSet"
    ss["spec"]["serviceName"] = "web"
    assert fields(ss) == ["spec.template.spec.restartPolicy"]


def test_null_fields_of_a_custom_resource_are_pruned_unless_required():
    obj = dask_cluster()
    obj["spec"]["idleTimeout"] = None
    assert sa.admit("CREATE", obj, None) == []
    obj["spec"]["worker"]["spec"] = None
    assert fields(obj) == ["spec.worker.spec"]


# --- RBAC, ConfigMaps, Secrets --------------------------------------------------------------------------


def role(rules) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r", "namespace": NS},
        "rules": rules,
    }


def binding(subjects, ref=None, kind="RoleBinding") -> dict:
    obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "b", "namespace": NS},
        "roleRef": ref or {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": subjects,
    }
    if kind == "ClusterRoleBinding":
        del obj["metadata"]["namespace"]
    return obj


def test_role_rules_need_verbs_api_groups_and_resources_and_no_urls_in_a_namespace():
    assert (
        sa.admit("CREATE", role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]), None) == []
    )
    assert message(role([{"apiGroups": [""], "resources": ["pods"], "verbs": []}])) == (
        'Role.rbac.authorization.k8s.io "r" is invalid: rules[0].verbs: Required value: verbs must contain at least one value'
    )
    assert message(role([{"resources": ["pods"], "verbs": ["get"]}])).endswith(
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group"
    )
    assert message(role([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])).endswith(
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs'
    )
    cluster_role = role([{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}])
    cluster_role["kind"] = "ClusterRole"
    del cluster_role["metadata"]["namespace"]
    assert sa.admit("CREATE", cluster_role, None) == []
    assert fields(
        role([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
        | {"metadata": {"name": "a/b", "namespace": NS}}
    ) == ["metadata.name"]


def test_bindings_check_role_ref_and_subjects_and_role_ref_is_immutable():
    sa_subject = {"kind": "ServiceAccount", "name": "runner", "namespace": NS}
    assert (
        sa.admit("CREATE", binding([sa_subject, {"kind": "User", "name": "me"}]), None) == []
    )  # User's group defaulted
    assert message(
        binding([sa_subject], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Secret", "name": "r"})
    ) == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef.kind: Unsupported value: "Secret": '
        'supported values: "Role", "ClusterRole"'
    )
    assert message(binding([{**sa_subject, "apiGroup": "v1"}])).endswith(
        'subjects[0].apiGroup: Unsupported value: "v1": supported values: ""'
    )
    crb = binding(
        [{"kind": "ServiceAccount", "name": "runner"}],
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "ClusterRoleBinding",
    )
    assert (
        message(crb)
        == 'ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: subjects[0].namespace: Required value'
    )
    old = binding([sa_subject])
    new = binding(
        [sa_subject], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    )
    assert message(new, old, "UPDATE") == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:'
        '"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
    )


def test_config_map_keys_and_total_size():
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": NS},
        "data": {"flow.py": "print(1)", "A_B-c": ""},
    }
    assert sa.admit("CREATE", cm, None) == []
    bad = copy.deepcopy(cm)
    bad["data"]["a/b"] = "x"
    assert message(bad) == (
        'ConfigMap "c" is invalid: data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
        "is '[-._a-zA-Z0-9]+')"
    )
    big = copy.deepcopy(cm)
    big["data"]["big"] = "x" * (1024 * 1024)
    assert message(big) == 'ConfigMap "c" is invalid: []: Too long: must have at most 1048576 bytes'


def test_secrets_decode_and_dockerconfigjson_needs_its_key_and_immutable_data_stays():
    import base64

    def secret(data, stype="Opaque", **extra):
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": NS},
            "type": stype,
            "data": data,
            **extra,
        }

    enc = base64.b64encode(b'{"auths": {}}').decode()
    assert (
        sa.admit("CREATE", secret({".dockerconfigjson": enc}, "kubernetes.io/dockerconfigjson"), None) == []
    )
    assert message(secret({"x": enc}, "kubernetes.io/dockerconfigjson")) == (
        'Secret "s" is invalid: data[.dockerconfigjson]: Required value'
    )
    not_json = base64.b64encode(b"{oops").decode()
    assert fields(secret({".dockerconfigjson": not_json}, "kubernetes.io/dockerconfigjson")) == [
        "data[.dockerconfigjson]"
    ]
    assert fields(secret({"k": "not base64!"})) == ["data[k]"]
    old = secret({"k": enc}, immutable=True)
    new = secret({"k": base64.b64encode(b"other").decode()}, immutable=True)
    assert (
        message(new, old, "UPDATE")
        == 'Secret "s" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )
    assert (
        fields(secret({"k": enc}, "kubernetes.io/dockerconfigjson"), secret({"k": enc}), "UPDATE")[-1]
        == "type"
    )


def test_custom_resources_take_their_crd_defaults_where_the_parent_exists():
    obj = dask_cluster()
    del obj["spec"]["worker"]["replicas"]
    sa.default_object(obj)
    assert obj["spec"]["worker"]["replicas"] == 1 and obj["spec"]["idleTimeout"] == 0
    assert obj["spec"]["scheduler"]["service"]["ports"][0]["protocol"] == "TCP"
    assert "status" not in obj  # no parent, no default


def test_no_new_finalizers_on_an_object_being_deleted():
    old = deployment()
    old["metadata"].update(deletionTimestamp=T0, finalizers=["a.io/x"])
    removed = copy.deepcopy(old)
    removed["metadata"]["finalizers"] = []
    assert sa.admit("UPDATE", removed, old) == []
    added = copy.deepcopy(old)
    added["metadata"]["finalizers"] = ["a.io/x", "b.io/y"]
    assert message(added, old, "UPDATE") == (
        'Deployment.apps "web" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the '
        'object is being deleted, found new finalizers []string{"b.io/y"}'
    )


def test_service_ports_are_unique_by_port_and_protocol_and_selector_values_are_label_values():
    dup = service([{"name": "a", "port": 80}, {"name": "b", "port": 80}])
    assert message(dup) == (
        'Service "svc" is invalid: spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
        'AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
    )
    obj = deployment()
    obj["spec"]["selector"] = {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "bad value"]}]
    }
    assert "spec.selector.matchExpressions[0].values[1]" in fields(obj)


def test_a_trailing_newline_is_not_a_valid_name_as_with_gos_regexps():
    obj = deployment()
    obj["metadata"]["name"] = "web\n"
    assert fields(obj) == ["metadata.name"]


@pytest.mark.parametrize("version", ["1.25", "1.27", "1.31", "1.35", "1.37"])
def test_every_installed_version_accepts_the_basic_objects(version):
    for obj in (deployment(), job(), pod(), service([{"port": 80}]), dask_cluster()):
        assert sa.admit("CREATE", obj, None, kube_version=version) == [], (version, obj["kind"])


def test_a_crds_bare_object_prunes_everything_but_kubernetes_free_form_fields_keep_theirs():
    autoscaler = {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskAutoscaler",
        "metadata": {"name": "a", "namespace": NS},
        "spec": {"cluster": "c", "minimum": 1, "maximum": 3},
        "status": {"lastScale": 2},
    }
    assert sa.unknown_fields(autoscaler) == ["status.lastScale"]
    live = sa.server_side_apply(None, deployment(), "dke", False, T0)
    assert sa.unknown_fields(live) == []  # managedFields' fieldsV1 is free-form


def test_probes_need_one_handler_valid_ports_and_liveness_success_threshold_one():
    def probed(**probe):
        return pod(containers=[{"name": "c", "image": "i", "readinessProbe": probe}])

    assert (
        sa.admit(
            "CREATE", probed(httpGet={"port": "http-dashboard", "path": "/health"}, periodSeconds=1), None
        )
        == []
    )
    assert message(probed(periodSeconds=1)) == (
        'Pod "p" is invalid: spec.containers[0].readinessProbe: Required value: must specify a handler type'
    )
    assert fields(probed(tcpSocket={"port": 0})) == ["spec.containers[0].readinessProbe.tcpSocket.port"]
    live = pod(
        containers=[
            {
                "name": "c",
                "image": "i",
                "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2},
            }
        ]
    )
    assert message(live).endswith(
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
    )
    init = pod(
        initContainers=[{"name": "i", "image": "i", "readinessProbe": {"exec": {"command": ["true"]}}}]
    )
    assert fields(init) == ["spec.initContainers[0].readinessProbe"]


def test_an_integer_probe_port_in_a_dask_cluster_is_refused_as_on_a_real_cluster():
    # dask/dask-kubernetes#778: the chart's CRDs declare IntOrString as `type: string, format: int-or-string`
    obj = dask_cluster()
    obj["spec"]["worker"]["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"port": 8788, "path": "/health"}
    }
    assert message(obj) == (
        'DaskCluster.kubernetes.dask.org "dc" is invalid: spec.worker.spec.containers[0].livenessProbe.httpGet.port: '
        'Invalid value: "integer": spec.worker.spec.containers[0].livenessProbe.httpGet.port in body must be of type '
        'string: "integer"'
    )
    obj["spec"]["worker"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = "http-dashboard"
    assert sa.admit("CREATE", obj, None) == []


def test_an_int_or_string_given_a_boolean_names_both_types():
    obj = service([{"port": 80, "targetPort": True}])
    assert sa.admit("CREATE", obj, None) == [
        {
            "reason": "FieldValueTypeInvalid",
            "field": "spec.ports[0].targetPort",
            "message": 'Invalid value: "boolean": spec.ports[0].targetPort in body must be of type integer,string: "boolean"',
        }
    ]


def test_a_conflict_with_a_scale_subresource_writer_names_the_subresource():
    live = sa.server_side_apply(None, applied(), "dke", False, T0)
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 4
    out = sa.record_write(live, scaled, "kubectl", T1, subresource="scale")
    assert out["metadata"]["managedFields"][1]["subresource"] == "scale"
    with pytest.raises(sa.Conflict) as err:
        sa.server_side_apply(out, applied(), "dke", False, T2)
    assert err.value.status()["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'
    )


def test_record_write_takes_a_map_only_when_it_creates_it():
    created = sa.record_write(None, deployment(), "kr8s", T0)
    relabelled = copy.deepcopy(created)
    relabelled["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    relabelled["spec"]["selector"]["matchLabels"]["tier"] = "x"
    out = sa.record_write(created, relabelled, "editor", T1)
    editor = out["metadata"]["managedFields"][1]
    assert editor["manager"] == "editor"
    assert editor["fieldsV1"]["f:spec"]["f:template"]["f:metadata"] == {"f:labels": {"f:tier": {}}}


def test_a_built_in_object_with_a_wrong_type_gets_only_the_type_error():
    obj = pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": "8786"}]}])
    assert sa.admit("CREATE", obj, None) == [
        {
            "reason": "FieldValueTypeInvalid",
            "field": "spec.containers[0].ports[0].containerPort",
            "message": 'Invalid value: "string": spec.containers[0].ports[0].containerPort in body must be of type integer: "string"',
        }
    ]
