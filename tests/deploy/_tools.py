"""Helpers the deploy checks share: locating tools, rendering overlays, validating objects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ENVIRONMENTS = ("dev", "prd")
LAYERS = ("controllers", "infrastructure", "migrations", "apps")
#: Kubernetes minor the clusters run (infra/envs/*.tfvars kubernetes_version).
K8S_VERSION = "1.34.0"
WORKLOAD_KINDS = {"Deployment", "Job", "CronJob"}


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's own first, then PATH; fail loudly if absent."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` is not installed: the deploy checks need it (see docs/deploy.md, "
            "'Checks'); install the dev dependencies with `make install`."
        )
    return found


def run(args: list[str], cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def render(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize PATH` parsed into objects."""
    result = run([tool("kubectl"), "kustomize", str(path)])
    assert result.returncode == 0, f"kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_environment(k8s_root: Path, env: str) -> dict[str, list[dict[str, Any]]]:
    return {layer: render(k8s_root / "overlays" / env / layer) for layer in LAYERS}


def kinds(objects: list[dict[str, Any]]) -> Counter[str]:
    return Counter(obj["kind"] for obj in objects)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def schema_errors(objects: list[dict[str, Any]], schemas: Path) -> list[str]:
    """Validate every object: built-in kinds against Kubernetes' own schemas (strict), custom
    resources against the committed JSON schemas. An object without a schema is an error."""
    import jsonschema
    import kubernetes_validate

    errors: list[str] = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        group, _, version = obj["apiVersion"].rpartition("/")
        custom = schemas / group / f"{obj['kind'].lower()}_{version}.json" if group else None
        if custom is not None and custom.exists():
            validator = jsonschema.Draft7Validator(json.loads(custom.read_text()))
            errors += [f"{where}: {e.json_path}: {e.message}" for e in validator.iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {obj['apiVersion']} {obj['kind']}")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {exc.message}")
    return errors


def pod_specs(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in {"Deployment", "Job"}:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def hardening_errors(objects: list[dict[str, Any]]) -> list[str]:
    """The pod security every stockdata workload must keep, stated once."""
    errors: list[str] = []
    for obj in objects:
        spec = pod_specs(obj)
        if spec is None:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        pod = spec.get("securityContext", {})
        if pod.get("runAsNonRoot") is not True:
            errors.append(f"{name}: pod securityContext.runAsNonRoot is not true")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            errors.append(f"{name}: seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            errors.append(f"{name}: automountServiceAccountToken is not false")
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            cname = f"{name}/{c['name']}"
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{cname}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{cname}: allowPrivilegeEscalation is not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                errors.append(f"{cname}: capabilities do not drop ALL")
            if not {"requests", "limits"} <= set(c.get("resources", {})):
                errors.append(f"{cname}: resources need requests and limits")
            if "@sha256:" not in c["image"]:
                errors.append(f"{cname}: image {c['image']} is not pinned by digest")
    return errors


def checkov(target: str, framework: str, cwd: Path = REPO) -> dict[str, Any]:
    """Run checkov offline over one target (file or directory) with one framework."""
    flag = "-f" if Path(cwd, target).is_file() else "-d"
    args = [tool("checkov"), flag, target, "--framework", framework, "-o", "json"]
    args += ["--skip-download", "--download-external-modules", "false"]
    result = run(args, cwd=cwd, timeout=600)
    assert result.returncode in (0, 1), f"checkov crashed on {target}:\n{result.stderr[-3000:]}"
    decoder, text, reports = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        doc, end = decoder.raw_decode(text)
        reports += doc if isinstance(doc, list) else [doc]
        text = text[end:].strip()
    matching = [r for r in reports if r.get("check_type") == framework]
    assert len(matching) == 1, f"checkov found nothing to scan in {target}: {result.stdout[:500]}"
    return matching[0]
