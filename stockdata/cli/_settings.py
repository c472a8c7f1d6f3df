"""`stockdata settings`: every setting, its environment variable, default and current value."""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr
from pydantic_settings import BaseSettings

#: (module, class) of every settings class, in the order the README lists them.
SETTINGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("stockdata.config", "StockdataSettings"),
    ("catalog", "DatabaseSettings"),
    ("lake", "LakeSettings"),
    ("loaders", "QueueSettings"),
    ("loaders", "ProviderSettings"),
    ("query_api", "ApiSettings"),
    ("query_api._flags", "FlagSettings"),
    ("query_api._auth", "AuthSettings"),
    ("query_api._sandbox", "SqlSettings"),
    ("query_api._hardening", "SecuritySettings"),
)


_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def settings_classes() -> list[type[BaseSettings]]:
    found = []
    for module, name in SETTINGS_CLASSES:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        found.append(cls)
    return found


def _default(field: Any) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, list | tuple | set | dict) and not value:
        return "empty"
    if isinstance(value, Path) and value.is_absolute():
        # A file shipped in the package: show where it lives in the source tree, not here.
        with contextlib.suppress(ValueError):
            value = value.relative_to(_SOURCE_ROOT)
    return f"`{value}`"


def rows() -> list[tuple[str, str, str, str]]:
    """(group, ENV_VAR, default, description) for every field, inherited fields listed once."""
    seen: set[str] = set()
    out = []
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            env = f"{prefix}{name}".upper()
            if env in seen:
                continue
            seen.add(env)
            out.append((cls.__name__, env, _default(field), field.description or ""))
    return out


def markdown_table() -> str:
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    group = None
    for cls, env, default, doc in rows():
        if cls != group:
            lines.append(f"| **{cls}** | | |")
            group = cls
        lines.append(f"| `{env}` | {default} | {doc.replace('|', '/')} |")
    return "\n".join(lines)


@click.command("settings")
@click.option("--markdown", is_flag=True, help="Print the README's settings table.")
def settings(markdown: bool) -> None:
    """List every STOCKDATA_ setting with its default and its value here (secrets masked)."""
    if markdown:
        click.echo(markdown_table())
        return
    for cls in settings_classes():
        current = cls()
        click.echo(f"[{cls.__name__}]")
        prefix = cls.model_config.get("env_prefix", "")
        for name in cls.model_fields:
            value = getattr(current, name)
            shown = "***" if isinstance(value, SecretStr) else value
            click.echo(f"  {prefix.upper()}{name.upper()} = {shown}")
