"""The Kubernetes manifests: both overlays render, validate, keep their hardening and wiring."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stockdata.cli._settings import SETTINGS_CLASSES, settings_classes
from tests.deploy._tools import (
    ENVIRONMENTS,
    LAYERS,
    REPO,
    find,
    hardening_errors,
    kinds,
    pod_specs,
    render,
    render_environment,
    schema_errors,
)

Rendered = dict[str, dict[str, list[dict[str, Any]]]]

EXPECTED_KINDS = {
    "controllers": Counter({"HelmRelease": 2, "HelmRepository": 2, "Namespace": 2}),
    "infrastructure": Counter(
        {
            "ServiceAccount": 5,
            "NetworkPolicy": 4,
            "SecretProviderClass": 3,
            "Namespace": 2,
            "ClusterIssuer": 1,
            "TriggerAuthentication": 1,
        }
    ),
    "migrations": Counter({"Job": 1, "NetworkPolicy": 1}),
    "apps": Counter(
        {
            "NetworkPolicy": 3,
            "ConfigMap": 2,
            "CronJob": 2,
            "Deployment": 2,
            "HorizontalPodAutoscaler": 1,
            "Ingress": 1,
            "PodDisruptionBudget": 1,
            "ScaledObject": 1,
            "Service": 1,
        }
    ),
}

#: env -> (API replicas, HPA min, HPA max, worker max, PDB)
SCALE = {
    "dev": (1, 1, 2, 2, {"maxUnavailable": 1}),
    "prd": (3, 3, 12, 20, {"minAvailable": 2}),
}
SCHEMAS = REPO / "k8s" / "schemas"


def everything(rendered: Rendered, env: str) -> list[dict[str, Any]]:
    return [obj for layer in LAYERS for obj in rendered[env][layer]]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_renders_exactly_these_kinds(rendered: Rendered, env: str, layer: str) -> None:
    assert kinds(rendered[env][layer]) == EXPECTED_KINDS[layer]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_object_validates_against_its_schema(
    rendered: Rendered, flux_rendered: dict[str, list[dict[str, Any]]], env: str
) -> None:
    objects = everything(rendered, env) + flux_rendered[env]
    assert len(objects) == 44
    assert schema_errors(objects, SCHEMAS) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_placeholder_survives_rendering(rendered: Rendered, env: str) -> None:
    text = yaml.safe_dump_all(everything(rendered, env))
    assert "set-by-overlay" not in text
    assert "10.255.255.0/24" not in text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_workloads_keep_their_hardening(rendered: Rendered, env: str) -> None:
    assert hardening_errors(everything(rendered, env)) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_scale_per_environment(rendered: Rendered, env: str) -> None:
    apps = rendered[env]["apps"]
    api_replicas, hpa_min, hpa_max, worker_max, pdb = SCALE[env]
    assert find(apps, "Deployment", "stockdata-api")["spec"]["replicas"] == api_replicas
    hpa = find(apps, "HorizontalPodAutoscaler", "stockdata-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (hpa_min, hpa_max)
    scaled = find(apps, "ScaledObject", "stockdata-worker")["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (0, worker_max)
    budget = find(apps, "PodDisruptionBudget", "stockdata-api")["spec"]
    assert {k: v for k, v in budget.items() if k != "selector"} == pdb
    # KEDA owns the worker's replica count; a fixed one would fight it on every reconcile.
    assert "replicas" not in find(apps, "Deployment", "stockdata-worker")["spec"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_probes_ports_and_ingress(rendered: Rendered, env: str) -> None:
    apps = rendered[env]["apps"]
    api = find(apps, "Deployment", "stockdata-api")["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    ingress = find(apps, "Ingress", "stockdata-api")
    host = f"api.{'dev.' if env == 'dev' else ''}stockdata.example.org"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "stockdata-api-tls"}]
    assert ingress["spec"]["rules"][0]["host"] == host
    routed = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert routed == ["/v1", "/eod", "/docs"]  # never /metrics or /health to the internet


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_worker_queue_scaling_and_shutdown(rendered: Rendered, env: str) -> None:
    apps, infra = rendered[env]["apps"], rendered[env]["infrastructure"]
    trigger = find(apps, "ScaledObject", "stockdata-worker")["spec"]["triggers"][0]
    assert trigger["type"] == "azure-queue"
    assert trigger["metadata"]["queueName"] == "eod-jobs"
    assert trigger["metadata"]["accountName"] == f"ststockdata{env}"
    assert trigger["authenticationRef"] == {"name": "stockdata-queue"}
    auth = find(infra, "TriggerAuthentication", "stockdata-queue")["spec"]["podIdentity"]
    assert auth["provider"] == "azure-workload"
    worker = find(apps, "Deployment", "stockdata-worker")["spec"]["template"]["spec"]
    # Longer than the 300 s visibility timeout the worker renews every ~60 s.
    assert worker["terminationGracePeriodSeconds"] == 360


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_schedules_are_daily_after_the_close_in_london(rendered: Rendered, env: str) -> None:
    apps = rendered[env]["apps"]
    controller = find(apps, "CronJob", "stockdata-controller")["spec"]
    maintenance = find(apps, "CronJob", "stockdata-maintenance")["spec"]
    assert (controller["schedule"], controller["timeZone"]) == ("0 1 * * *", "Europe/London")
    assert (maintenance["schedule"], maintenance["timeZone"]) == ("30 3 * * 0", "Europe/London")
    assert controller["concurrencyPolicy"] == maintenance["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_image_pinned_by_digest_everywhere(rendered: Rendered, env: str) -> None:
    images = {
        c["image"]
        for obj in everything(rendered, env)
        if (spec := pod_specs(obj)) is not None
        for c in spec.get("initContainers", []) + spec["containers"]
    }
    assert images == {f"crstockdata{env}.azurecr.io/stockdata:0.1.0@sha256:{'0' * 64}"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_workload_identity_and_secrets_wiring(rendered: Rendered, env: str) -> None:
    objects = everything(rendered, env)
    accounts = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "ServiceAccount"
    }
    classes = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "SecretProviderClass"
    }
    synced = {
        s["secretName"]: (key, s) for key, o in classes.items() for s in o["spec"]["secretObjects"]
    }
    for obj in objects:
        spec = pod_specs(obj)
        if spec is None:
            continue
        ns = obj["metadata"]["namespace"]
        template = obj["spec"].get("template") or obj["spec"]["jobTemplate"]["spec"]["template"]
        assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
        account = accounts[(ns, spec["serviceAccountName"])]
        client_id = account["metadata"]["annotations"]["azure.workload.identity/client-id"]
        csi = next(v for v in spec["volumes"] if "csi" in v)["csi"]
        spc = classes[(ns, csi["volumeAttributes"]["secretProviderClass"])]
        # The CSI driver authenticates as the pod's ServiceAccount: same identity required.
        assert spc["spec"]["parameters"]["clientID"] == client_id, obj["metadata"]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            for source in container["envFrom"]:
                if "secretRef" in source:
                    owner, _ = synced[source["secretRef"]["name"]]
                    assert owner == (ns, spc["metadata"]["name"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_settings_load_in_every_settings_class(
    rendered: Rendered, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the pods get from the settings ConfigMap must parse, or the API and the workers
    # fail at start-up: e.g. STOCKDATA_ALLOWED_HOSTS is the bare API host name.
    found = [
        o
        for o in everything(rendered, env)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("stockdata-settings-")
    ]
    data = found[0]["data"]
    assert found and all(o["data"] == data for o in found)  # one per namespace, the same
    for name in [n for n in os.environ if n.startswith("STOCKDATA_")]:
        monkeypatch.delenv(name)
    for name, text in data.items():
        monkeypatch.setenv(name, text)
    loaded = {cls.__name__: cls() for cls in settings_classes()}
    assert len(loaded) == len(SETTINGS_CLASSES)
    security = loaded["SecuritySettings"]
    host = {"dev": "api.dev.stockdata.example.org", "prd": "api.stockdata.example.org"}[env]
    assert security.allowed_hosts == [host]  # type: ignore[attr-defined]
    assert security.cors_origins == [f"https://{host.replace('api.', 'app.', 1)}"]  # type: ignore[attr-defined]
    assert loaded["StockdataSettings"].profile == "prod"  # type: ignore[attr-defined]


def test_flux_chain_per_environment(flux_rendered: dict[str, list[dict[str, Any]]]) -> None:
    for env in ENVIRONMENTS:
        objects = flux_rendered[env]
        repo = find(objects, "GitRepository", "stockdata")["spec"]
        assert repo["ref"] == {"branch": f"state.{env}"}
        chain = {
            o["metadata"]["name"]: (
                o["spec"]["path"],
                [d["name"] for d in o["spec"].get("dependsOn", [])],
            )
            for o in objects
            if o["kind"] == "Kustomization"
        }
        assert chain == {
            "stockdata-flux": (f"./k8s/flux/{env}", []),
            "stockdata-controllers": (f"./k8s/overlays/{env}/controllers", []),
            "stockdata-infrastructure": (
                f"./k8s/overlays/{env}/infrastructure",
                ["stockdata-controllers"],
            ),
            "stockdata-migrations": (
                f"./k8s/overlays/{env}/migrations",
                ["stockdata-infrastructure"],
            ),
            "stockdata-apps": (f"./k8s/overlays/{env}/apps", ["stockdata-migrations"]),
        }
        for o in objects:
            if o["kind"] == "Kustomization":
                assert Path(REPO, o["spec"]["path"]).is_dir()


def test_overlays_are_small_patches_not_copies() -> None:
    for env in ENVIRONMENTS:
        files = sorted(p for p in (REPO / "k8s" / "overlays" / env).rglob("*") if p.is_file())
        lines = sum(len(p.read_text().splitlines()) for p in files)
        assert lines < 150, f"overlay {env} has grown to {lines} lines: move shared parts to base"


# ---- regressions: break a scratch copy on purpose and show the checks notice -----------------


def test_removing_run_as_non_root_is_caught(k8s_copy: Path) -> None:
    api = k8s_copy / "base" / "apps" / "api.yaml"
    text = api.read_text()
    assert text.count("runAsNonRoot: true") == 1
    api.write_text(text.replace("        runAsNonRoot: true\n", ""))
    objects = render(k8s_copy / "overlays" / "prd" / "apps")
    assert hardening_errors(objects) == [
        "Deployment/stockdata-api: pod securityContext.runAsNonRoot is not true"
    ]


def test_checkov_catches_a_writable_root_filesystem(k8s_copy: Path, tmp_path: Path) -> None:
    from tests.deploy._tools import checkov

    worker = k8s_copy / "base" / "apps" / "worker.yaml"
    worker.write_text(
        worker.read_text().replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "apps.yaml").write_text(
        yaml.safe_dump_all(render(k8s_copy / "overlays" / "dev" / "apps"))
    )
    report = checkov(str(out), "kubernetes")
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert failed == {("CKV_K8S_22", "Deployment.stockdata-ingest.stockdata-worker")}


def test_a_misspelt_custom_resource_field_is_caught(k8s_copy: Path) -> None:
    worker = k8s_copy / "base" / "apps" / "worker.yaml"
    worker.write_text(worker.read_text().replace("maxReplicaCount: 10", "maxReplicas: 10"))
    objects = render_environment(k8s_copy, "dev")["apps"]
    errors = schema_errors(objects, SCHEMAS)
    assert len(errors) == 1
    assert errors[0].startswith("ScaledObject/stockdata-worker: $.spec: Additional properties")
    assert "'maxReplicas' was unexpected" in errors[0]
