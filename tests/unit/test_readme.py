"""The README's generated blocks (settings table, CLI reference) match the code."""

from __future__ import annotations

from stockdata.cli import _readme


def test_readme_generated_blocks_are_current() -> None:
    current = _readme.README.read_text()
    assert _readme.render(current) == current, "run `python -m stockdata.cli._readme`"


def test_readme_shows_the_two_commands_first() -> None:
    text = _readme.README.read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in first_block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
