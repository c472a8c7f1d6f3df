"""Regenerate the README's settings table and CLI reference: `python -m stockdata.cli._readme`.

`--check` exits non-zero when the README is stale; a test runs the same check.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from stockdata.cli import cli
from stockdata.cli._settings import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def _walk(cmd: click.Command, path: list[str], ctx: click.Context) -> Iterator[str]:
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(sub, [*path, name], click.Context(sub, info_name=name, parent=ctx))
        return
    pieces = []
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Argument):
            pieces.append(param.human_readable_name.upper())
        elif isinstance(param, click.Option) and not param.hidden and "--help" not in param.opts:
            flag = max(param.opts, key=len)
            pieces.append(f"[{flag}]")
    usage = " ".join(["stockdata", *path, *pieces])
    doc = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
    yield f"| `{usage}` | {doc} |"


def cli_reference() -> str:
    ctx = click.Context(cli, info_name="stockdata")
    return "\n".join(["| command | what it does |", "| --- | --- |", *_walk(cli, [], ctx)])


def _replacement(body: str) -> Callable[[re.Match[str]], str]:
    return lambda m: f"{m.group(1)}{body}\n{m.group(2)}"


def render(text: str) -> str:
    for name, body in (("settings-table", markdown_table()), ("cli-reference", cli_reference())):
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        text = pattern.sub(_replacement(body), text)
    return text


def main(argv: list[str]) -> int:
    current = README.read_text()
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print("README.md is stale: run `python -m stockdata.cli._readme`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
