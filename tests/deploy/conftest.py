"""Session fixtures for the deploy checks: each overlay rendered once, checkov run once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._tools import ENVIRONMENTS, LAYERS, REPO, checkov, render, render_environment


@pytest.fixture(scope="session")
def rendered() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every layer of every environment, as the cluster receives it: rendered[env][layer]."""
    return {env: render_environment(REPO / "k8s", env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def flux_rendered() -> dict[str, list[dict[str, Any]]]:
    return {env: render(REPO / "k8s" / "flux" / env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def checkov_reports(
    rendered: dict[str, dict[str, list[dict[str, Any]]]],
    flux_rendered: dict[str, list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Any]]:
    """checkov over the three targets, once per session, the three runs in parallel.

    k8s/ is scanned as rendered (what reaches the cluster): the base alone holds
    placeholders that the overlays replace, so scanning it raw would judge a fiction."""
    out = tmp_path_factory.mktemp("rendered-k8s")
    for env in ENVIRONMENTS:
        for layer in LAYERS:
            (out / f"{env}-{layer}.yaml").write_text(yaml.safe_dump_all(rendered[env][layer]))
        (out / f"flux-{env}.yaml").write_text(yaml.safe_dump_all(flux_rendered[env]))
    jobs = {
        "k8s": (str(out), "kubernetes"),
        "infra": ("infra", "terraform"),
        "Dockerfile": ("Dockerfile", "dockerfile"),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(checkov, *job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A scratch copy of k8s/ to break on purpose."""
    import shutil

    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    return tmp_path / "k8s"
