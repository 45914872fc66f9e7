"""One environment in, one Loaded out: the front half of every command.

The order `load_environment` runs, each stage on the previous one's result:

1. parse the flags: --kube-version, then every --set and --set-string (bad syntax is a
   usage error, raised before any file is read);
2. load: the environment file and each -f overlay, as plain data with positions (a file
   that cannot be read or parsed ends the pipeline here, as a diagnostic);
3. merge: the overlays deep-merged over the file, then the --set assignments applied
   into the result (an index past a list's end is a usage error, raised);
4. validate the merged data against the JSON schema (any problem ends it here);
5. build the typed model (`Environment`) from the valid data;
6. check the environment (names, images, flow, limits; deployments when there are any);
7. per spec file: resolve its path relative to the file that named it, load and
   validate it against the Kubernetes schema, check its images and its pod template;
8. check the extra_images allow-list against the spec files.

Problems are collected as diagnostics rather than raised, so that `dke lint` reports
all of them at once; only the CLI decides what they mean for the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dke.diagnostics import ERROR, WARNING, Diagnostic, DkeError, has_errors
from dke.environment import flowcheck, podtemplate
from dke.environment.checks import check_environment, check_extra_images, check_spec_file
from dke.environment.deployment import check_deployment
from dke.environment.flowcheck import parse_params
from dke.environment.kubeschema import DEFAULT_KUBE_VERSION, UnsupportedKubeVersion, check_kube_version
from dke.environment.load import load_mapping
from dke.environment.merge import Merged, SetString, layer, parse_set
from dke.environment.model import Environment, from_validated
from dke.environment.paths import resolve_spec_path
from dke.environment.specs import SPEC_NOT_FOUND, PodSpecFile, load_spec_file
from dke.environment.validate import validate_environment

if TYPE_CHECKING:
    from dke.environment.flowcheck import FlowSignature


@dataclass
class Loaded:
    """A validated environment with its spec files, or the reasons it is not valid."""

    file: str  # as given on the command line
    base_dir: Path  # where relative paths (flow, spec files) are resolved
    diagnostics: list[Diagnostic] = field(default_factory=list)
    merged: Merged | None = None
    env: Environment | None = None
    scheduler: PodSpecFile | None = None
    worker: PodSpecFile | None = None
    flow: FlowSignature | None = None  # the flow function as its source says (None: not known)

    def ok(self, strict: bool = False) -> bool:
        return self.env is not None and not has_errors(self.diagnostics, strict)


def load_environment(
    file: str,
    overlays: Sequence[str] = (),
    sets: Sequence[str] = (),
    kube_version: str = DEFAULT_KUBE_VERSION,
    params: Sequence[str] | None = None,
    local_run: bool = False,
) -> Loaded:
    """Run the front half of the pipeline. Raises DkeError only for usage errors (bad --set, --param).

    params: the command's `--param NAME=VALUE`, for the commands that run the flow (run,
    apply; None for the others): checked against the flow's signature, then merged over
    flow.parameters in `env`. local_run: the flow runs on this machine, so its file must exist.
    """

    try:  # a usage error even when no spec file would need the schemas
        check_kube_version(kube_version)
    except UnsupportedKubeVersion as e:
        raise DkeError(f"--kube-version: {e}", 2) from None
    loaded = Loaded(file, Path(file).parent)
    # Helm's order: every --set, then every --set-string (a SetString); usage errors raise
    plain = [arg for arg in sets if not isinstance(arg, SetString)]
    strings = [arg for arg in sets if isinstance(arg, SetString)]
    set_docs = [parse_set(i, arg) for i, arg in enumerate(plain)]
    set_docs += [parse_set(i, arg) for i, arg in enumerate(strings)]
    param_docs = parse_params(params or ())
    try:
        # An empty overlay changes nothing (Helm accepts empty values files too).
        documents = [load_mapping(file)] + [load_mapping(f, allow_empty=True) for f in overlays]
    except DkeError as e:
        loaded.diagnostics.extend(e.diagnostics)
        return loaded
    merged = layer(documents + set_docs)
    loaded.merged = merged

    problems = validate_environment(merged.data, merged)
    loaded.diagnostics.extend(problems)
    if problems:
        return loaded
    env = from_validated(merged.data)
    loaded.env = env

    loaded.diagnostics.extend(check_environment(env, merged, loaded.base_dir))
    loaded.diagnostics.extend(
        _check_flow(loaded, merged, param_docs, runs=params is not None, local_run=local_run)
    )
    if isinstance(merged.data, dict) and merged.data.get("deployment"):
        loaded.diagnostics.extend(check_deployment(env, merged))
    for key in ("scheduler_spec_file", "worker_spec_file"):
        name = getattr(env, key)
        if not name:
            continue
        origin = merged.document_for((key,))
        base = origin.path.parent if origin.path is not None else loaded.base_dir

        _, reason = resolve_spec_path(base, name)  # relative, inside base's tree, a regular file
        if reason is not None:
            loaded.diagnostics.append(merged.diagnostic((key,), SPEC_NOT_FOUND, reason))
            continue
        spec, problems = load_spec_file(name, base, kube_version)
        loaded.diagnostics.extend(problems)
        if spec is not None:
            role = key.split("_")[0]
            loaded.diagnostics.extend(check_spec_file(spec, env.image, env.extra_images, role))
            loaded.diagnostics.extend(podtemplate.check(spec, role))
            setattr(loaded, role, spec)
    specs = [s for s in (loaded.scheduler, loaded.worker) if s is not None]
    loaded.diagnostics.extend(check_extra_images(env, merged, specs))
    return loaded


def _check_flow(loaded: Loaded, merged: Merged, param_docs, runs: bool, local_run: bool) -> list[Diagnostic]:
    """The flow's file, function and parameters (dke.environment.flowcheck); with --param, the
    run's parameters become env.flow.parameters."""

    env = loaded.env
    flow = env.flow
    supplied = set(flow.parameters) | {name for doc in param_docs for name in doc.data}
    deployment = merged.data.get("deployment")
    if not runs and isinstance(deployment, dict):  # a deployment's runs get its parameters too
        supplied |= set(deployment.get("parameters") or {})
    where = ("flow", "parameters") if "parameters" in merged.data.get("flow", {}) else ("flow",)
    values = flowcheck.environment_parameters(flow.parameters, merged.diagnostic, param_docs)
    values += _deployment_parameters(deployment, merged)
    diagnostics, loaded.flow = flowcheck.check_flow(
        flow.entrypoint,
        loaded.base_dir,
        lambda code, message, severity: merged.diagnostic(("flow", "entrypoint"), code, message, severity),
        values,
        file_required=local_run,
        supplied=supplied,
        at_parameters=lambda code, message, severity: merged.diagnostic(where, code, message, severity, True),
        missing_severity=ERROR if runs else WARNING,
    )
    if param_docs:
        parameters = {**flow.parameters, **flowcheck.param_values(param_docs)}
        loaded.env = env.model_copy(update={"flow": flow.model_copy(update={"parameters": parameters})})
    return diagnostics


def _deployment_parameters(deployment, merged: Merged) -> list:
    """The values the deployment's runs get (deployment.parameters, each schedule's
    parameters), each checked against the flow's signature at its own key."""
    if not isinstance(deployment, dict):
        return []
    places = [(("deployment", "parameters"), deployment.get("parameters"))]
    for i, schedule in enumerate(deployment.get("schedules") or []):
        if isinstance(schedule, dict):
            places.append((("deployment", "schedules", i, "parameters"), schedule.get("parameters")))
    return [
        (name, value, merged.diagnostic, (*path, name))
        for path, parameters in places
        if isinstance(parameters, dict)
        for name, value in parameters.items()
    ]
