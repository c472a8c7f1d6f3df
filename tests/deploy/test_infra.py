"""Terraform: formatting, the module conventions, and the security properties that matter,
read from the HCL itself (the registry is out of reach, so no `terraform validate` here)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._tools import ENVIRONMENTS, REPO, render, run, tool

INFRA = REPO / "infra"
MODULES = sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir())


def parse(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open() as fh:
        return hcl2.load(fh)


def value(raw: Any) -> Any:
    """An attribute's value, whichever shape the HCL parser wraps it in."""
    while isinstance(raw, list) and len(raw) == 1 and not isinstance(raw[0], dict):
        raw = raw[0]
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    return raw


def mapping(raw: Any) -> dict[str, Any]:
    """A map-valued attribute (e.g. `x = { a = 1 }`), unwrapped."""
    while isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    assert isinstance(raw, dict), raw
    return {k: value(v) for k, v in raw.items()}


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = body.get(name, [])
    return found if isinstance(found, list) else [found]


def resources(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource in a module directory, by (type, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for tf in sorted(root.glob("*.tf")):
        for entry in parse(tf).get("resource", []):
            for rtype, named in entry.items():
                for rname, body in named.items():
                    out[(rtype, rname)] = body
    return out


def attrs(body: dict[str, Any]) -> dict[str, Any]:
    return {k: value(v) for k, v in body.items() if not k.startswith("__")}


def sub(body: dict[str, Any], *path: str) -> dict[str, Any]:
    for name in path:
        body = blocks(body, name)[0]
    return attrs(body)


def test_terraform_fmt_is_clean() -> None:
    result = run([tool("terraform"), "fmt", "-check", "-recursive", "-diff", "infra"])
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"
    assert result.stdout == ""


#: The main resource of each module, which must be the one named `this`.
MAIN_RESOURCE = {
    "acr": "azurerm_container_registry",
    "aks": "azurerm_kubernetes_cluster",
    "identity": "azurerm_user_assigned_identity",
    "keyvault": "azurerm_key_vault",
    "log_analytics": "azurerm_log_analytics_workspace",
    "postgres": "azurerm_postgresql_flexible_server",
    "private_dns": "azurerm_private_dns_zone",
    "storage": "azurerm_storage_account",
    "vnet": "azurerm_virtual_network",
}


def test_modules_follow_the_house_conventions() -> None:
    assert sorted(m.name for m in MODULES) == sorted(MAIN_RESOURCE)
    for module in MODULES:
        assert (MAIN_RESOURCE[module.name], "this") in resources(module), module.name
        for tf in module.glob("*.tf"):
            body = parse(tf)
            assert "provider" not in body, f"{tf}: modules never configure providers"
            if tf.name != "terraform.tf":
                assert "terraform" not in body, f"{tf}: the terraform block lives in terraform.tf"
        assert len(parse(module / "terraform.tf")["terraform"]) == 1


def test_one_terraform_block_per_root_with_a_remote_backend() -> None:
    blocks_found = [
        (tf.name, entry) for tf in INFRA.glob("*.tf") for entry in parse(tf).get("terraform", [])
    ]
    assert [name for name, _ in blocks_found] == ["terraform.tf"]
    backend = blocks(blocks_found[0][1], "backend")[0]
    assert list(k for k in backend if not k.startswith("__")) == ["azurerm"]
    for env in ENVIRONMENTS:
        text = (INFRA / "envs" / f"{env}.backend.hcl").read_text()
        assert f'key                  = "stockdata-{env}.tfstate"' in text
        assert "use_azuread_auth     = true" in text


@pytest.mark.parametrize("root", [INFRA, *MODULES], ids=lambda p: p.name)
def test_every_variable_is_typed_described_and_validated(root: Path) -> None:
    variables = {
        name: body
        for tf in root.glob("*.tf")
        for entry in parse(tf).get("variable", [])
        for name, body in entry.items()
    }
    assert variables, f"{root} declares no variables"
    for name, body in variables.items():
        assert "type" in body, f"{root.name}.{name} has no type"
        assert len(str(value(body.get("description", "")))) > 10, f"{root.name}.{name}: describe it"
        assert blocks(body, "validation"), f"{root.name}.{name} has no validation"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tfvars_set_every_root_variable(env: str) -> None:
    declared = {
        name
        for entry in parse(INFRA / "variables.tf")["variable"]
        for name, body in entry.items()
        if "default" not in body
    }
    given = {k: value(v) for k, v in parse(INFRA / "envs" / f"{env}.tfvars").items()}
    assert set(given) == declared
    assert given["environment"] == env


def test_storage_is_private_tls12_entra_only() -> None:
    found = resources(INFRA / "modules" / "storage")
    account = found[("azurerm_storage_account", "this")]
    assert {
        k: attrs(account)[k]
        for k in (
            "public_network_access_enabled",
            "allow_nested_items_to_be_public",
            "shared_access_key_enabled",
            "min_tls_version",
            "https_traffic_only_enabled",
            "is_hns_enabled",
        )
    } == {
        "public_network_access_enabled": False,
        "allow_nested_items_to_be_public": False,
        "shared_access_key_enabled": False,
        "min_tls_version": "TLS1_2",
        "https_traffic_only_enabled": True,
        "is_hns_enabled": True,
    }
    assert sub(account, "network_rules")["default_action"] == "Deny"
    assert attrs(found[("azurerm_storage_container", "lake")])["container_access_type"] == "private"
    queues = attrs(found[("azapi_resource", "queue")])["for_each"]
    assert "-poison" in queues
    endpoint = found[("azurerm_private_endpoint", "this")]
    assert attrs(endpoint)["for_each"] == "${var.private_dns_zone_ids}"


def test_aks_is_private_with_workload_identity() -> None:
    found = resources(INFRA / "modules" / "aks")
    cluster = found[("azurerm_kubernetes_cluster", "this")]
    a = attrs(cluster)
    assert (
        a["private_cluster_enabled"],
        a["oidc_issuer_enabled"],
        a["workload_identity_enabled"],
        a["local_account_disabled"],
        a["role_based_access_control_enabled"],
    ) == (True, True, True, True, True)
    assert sub(cluster, "network_profile")["network_plugin"] == "azure"
    assert sub(cluster, "network_profile")["network_policy"] == "azure"
    assert sub(cluster, "workload_autoscaler_profile")["keda_enabled"] is True
    assert sub(cluster, "key_vault_secrets_provider")["secret_rotation_enabled"] is True
    assert sub(cluster, "azure_active_directory_role_based_access_control")["azure_rbac_enabled"]
    assert sub(cluster, "default_node_pool")["only_critical_addons_enabled"] is True
    spot = attrs(found[("azurerm_kubernetes_cluster_node_pool", "spot")])
    assert (spot["priority"], spot["eviction_policy"], spot["min_count"]) == ("Spot", "Delete", 0)
    assert attrs(found[("azurerm_kubernetes_cluster_extension", "flux")])["extension_type"] == (
        "microsoft.flux"
    )


def test_postgres_is_private_with_tls_enforced() -> None:
    found = resources(INFRA / "modules" / "postgres")
    server = attrs(found[("azurerm_postgresql_flexible_server", "this")])
    assert server["public_network_access_enabled"] is False
    assert server["delegated_subnet_id"] == "${var.delegated_subnet_id}"
    assert server["backup_retention_days"] == "${var.backup_retention_days}"
    settings = {
        attrs(body)["name"]: attrs(body)["value"]
        for (rtype, _), body in found.items()
        if rtype == "azurerm_postgresql_flexible_server_configuration"
    }
    assert settings["require_secure_transport"] == "on"
    assert settings["ssl_min_protocol_version"] == "TLSv1.2"


def test_key_vault_uses_rbac_and_is_private() -> None:
    vault = resources(INFRA / "modules" / "keyvault")[("azurerm_key_vault", "this")]
    a = attrs(vault)
    assert (a["enable_rbac_authorization"], a["purge_protection_enabled"]) == (True, True)
    assert a["public_network_access_enabled"] is False
    assert sub(vault, "network_acls")["default_action"] == "Deny"


def test_registry_is_private_without_admin_user() -> None:
    registry = attrs(resources(INFRA / "modules" / "acr")[("azurerm_container_registry", "this")])
    assert (
        registry["admin_enabled"],
        registry["anonymous_pull_enabled"],
        registry["public_network_access_enabled"],
    ) == (False, False, False)


def test_federated_identities_match_the_kubernetes_service_accounts() -> None:
    """Every ServiceAccount a pod runs as is federated, and nothing else is (except KEDA)."""
    subjects = set()
    roles: dict[str, set[str]] = {}
    main = parse(INFRA / "main.tf")
    local_roles = {
        f"${{local.{name}}}": mapping(body)["role"]
        for entry in main["locals"]
        for name, body in entry.items()
        if isinstance(body, (dict, list)) and "role" in str(body)
    }
    for entry in main["module"]:
        for name, body in entry.items():
            if value(body["source"]) == "./modules/identity":
                subjects |= set(mapping(body["federated_service_accounts"]).values())
                roles[name] = {
                    mapping(r)["role"] if isinstance(r, (dict, list)) else local_roles[r]
                    for r in mapping(body["role_assignments"]).values()
                }
    accounts = {
        f"{o['metadata']['namespace']}:{o['metadata']['name']}"
        for o in render(REPO / "k8s" / "overlays" / "prd" / "infrastructure")
        if o["kind"] == "ServiceAccount"
    }
    assert subjects == accounts | {"kube-system:keda-operator"}
    assert roles == {
        "id_api": {"Storage Blob Data Reader", "Key Vault Secrets User"},
        "id_worker": {
            "Storage Blob Data Contributor",
            "Storage Queue Data Contributor",
            "Key Vault Secrets User",
        },
        "id_controller": {"Storage Queue Data Message Sender", "Key Vault Secrets User"},
        "id_keda": {"Storage Queue Data Reader"},
    }


def test_cluster_env_output_has_every_overlay_key() -> None:
    text = (INFRA / "outputs.tf").read_text()
    output_keys = set(re.findall(r'^\s+"([A-Z_]+)=', text, re.MULTILINE))
    for env in ENVIRONMENTS:
        env_file = REPO / "k8s" / "overlays" / env / "cluster" / "cluster.env"
        file_keys = {line.split("=", 1)[0] for line in env_file.read_text().splitlines() if line}
        assert file_keys == output_keys


def test_a_public_storage_account_is_caught(tmp_path: Path) -> None:
    from tests.deploy._tools import checkov

    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy, ignore=shutil.ignore_patterns(".terraform*"))
    main = copy / "modules" / "storage" / "main.tf"
    main.write_text(
        main.read_text().replace(
            "public_network_access_enabled     = false", "public_network_access_enabled     = true"
        )
    )
    account = resources(copy / "modules" / "storage")[("azurerm_storage_account", "this")]
    assert attrs(account)["public_network_access_enabled"] is True
    report = checkov(str(copy), "terraform")
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert ("CKV_AZURE_59", "module.lake.azurerm_storage_account.this") in failed
