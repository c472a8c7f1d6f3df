"""The image, the workflows, checkov over every target, and the commands the roles run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._tools import ENVIRONMENTS, LAYERS, REPO, pod_specs, run, tool

DOCKERFILE = REPO / "Dockerfile"
WORKFLOWS = REPO / ".github" / "workflows"


def stages(text: str) -> list[list[str]]:
    """Dockerfile instructions (continuations joined), split into stages."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    out: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_hadolint_is_clean() -> None:
    result = run([tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert (result.returncode, result.stdout) == (0, "")


def test_dockerfile_shape() -> None:
    assets, build, runtime = stages(DOCKERFILE.read_text())
    assert assets[0] == "FROM node:20.19.5-bookworm-slim AS assets"
    assert "npm ci --omit=dev" in "\n".join(assets)
    assert "COPY --from=assets /src/vendor/ query_api/static/vendor/" in build
    assert build[0] == "FROM python:3.11.14-slim-bookworm AS build"
    assert runtime[0] == "FROM python:3.11.14-slim-bookworm AS runtime"
    build_text, runtime_text = "\n".join(build), "\n".join(runtime)
    assert "-r requirements/lock.txt" in build_text
    assert "--no-deps ." in build_text
    assert "COPY --from=build /opt/stockdata /opt/stockdata" in runtime
    assert "USER 10001:10001" in runtime
    assert not re.search(r"apt-get|gcc|build-essential|pip install", runtime_text)
    assert 'ENTRYPOINT ["stockdata"]' in runtime


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[1] == "*"
    assert "!requirements/lock.txt" in lines
    assert ".venv" not in "".join(ln for ln in lines if ln.startswith("!"))


def test_actionlint_is_clean() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 4
    result = run([tool("actionlint"), "-no-color", *files])
    assert (result.returncode, result.stdout) == (0, "")


def test_every_action_is_pinned() -> None:
    uses: list[str] = []
    for path in [*WORKFLOWS.glob("*.yml"), *(REPO / ".github" / "actions").glob("*/action.yml")]:
        uses += re.findall(r"uses:\s*(\S+)", path.read_text())
    remote = [u for u in uses if not u.startswith("./")]
    assert len(remote) >= 10
    for ref in remote:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", ref), ref
    local = {u for u in uses if u.startswith("./")}
    assert local == {
        "./.github/actions/setup-python",
        "./.github/actions/azure-login",
        "./.github/actions/build-push-image",
        "./.github/actions/set-image",
    }
    assert all((REPO / u / "action.yml").exists() for u in local)


def test_promotion_targets_the_state_branches() -> None:
    release = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    assert release[True]["push"]["branches"] == ["dev", "prd"]  # YAML 1.1 reads `on` as True
    steps = release["jobs"]["promote"]["steps"]
    pr = next(s for s in steps if s.get("uses", "").startswith("peter-evans/create-pull-request"))
    assert pr["with"]["base"] == "state.${{ github.ref_name }}"


# ---- checkov: one session run over the three targets, asserted per target --------------------

EXPECTED_SKIPS = {
    "k8s": {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_35"},
    "infra": {"CKV_AZURE_117", "CKV_AZURE_166", "CKV2_AZURE_1", "CKV2_AZURE_21", "CKV2_AZURE_57"},
    "Dockerfile": set(),
}


@pytest.mark.parametrize("target", ["k8s", "infra", "Dockerfile"])
def test_checkov_has_no_failed_check(checkov_reports: dict[str, Any], target: str) -> None:
    report = checkov_reports[target]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50


@pytest.mark.parametrize("target", ["k8s", "infra", "Dockerfile"])
def test_checkov_skips_are_the_known_ones_with_reasons(
    checkov_reports: dict[str, Any], target: str
) -> None:
    skipped = checkov_reports[target]["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == EXPECTED_SKIPS[target]
    for check in skipped:
        assert len(check["check_result"]["suppress_comment"].strip()) > 40, check["check_id"]


# ---- every role's command exists in the CLI -------------------------------------------------


def role_commands() -> dict[str, list[str]]:
    """role -> the argv after `stockdata`, from the Dockerfile CMD and the rendered manifests."""
    from tests.deploy._tools import render

    commands: dict[str, list[str]] = {}
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert cmd is not None
    commands["image-default"] = yaml.safe_load(cmd.group(1))
    for env in ENVIRONMENTS:
        for layer in LAYERS:
            for obj in render(REPO / "k8s" / "overlays" / env / layer):
                spec = pod_specs(obj)
                if spec is None:
                    continue
                for c in spec.get("initContainers", []) + spec["containers"]:
                    assert "command" not in c, "roles choose args; the entrypoint is stockdata"
                    commands[f"{obj['metadata']['name']}/{c['name']}"] = c["args"]
    return commands


ROLE_COMMANDS = role_commands()


def test_the_roles_are_these() -> None:
    assert {k: " ".join(v) for k, v in ROLE_COMMANDS.items()} == {
        "image-default": "serve --host 0.0.0.0 --port 8000",
        "stockdata-api/api": "serve --host 0.0.0.0 --port 8000 --workers 2",
        "stockdata-worker/worker": "ingest work",
        "stockdata-controller/controller": "ingest enqueue",
        "stockdata-migrate/migrate": "db upgrade",
        "stockdata-maintenance/optimize": "lake optimize",
        "stockdata-maintenance/vacuum": "lake vacuum",
    }


@pytest.mark.parametrize("role", sorted(ROLE_COMMANDS))
def test_role_command_exists_in_the_cli(role: str) -> None:
    result = run([tool("stockdata"), *ROLE_COMMANDS[role], "--help"], timeout=120)
    assert result.returncode == 0, f"`stockdata {' '.join(ROLE_COMMANDS[role])}`: {result.stderr}"
    assert result.stdout.startswith("Usage: stockdata ")


RUNBOOK_COMMANDS = [["ingest", "replay-poisoned"], ["lake", "restore", "--version", "1"]]


@pytest.mark.parametrize("argv", RUNBOOK_COMMANDS, ids=" ".join)
def test_runbook_commands_exist_in_the_cli(argv: list[str]) -> None:
    assert " ".join(argv[:2]) in Path(REPO, "docs", "deploy.md").read_text()
    result = run([tool("stockdata"), *argv, "--help"], timeout=120)
    assert result.returncode == 0, f"`stockdata {' '.join(argv)}`: {result.stderr}"
