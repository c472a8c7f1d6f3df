"""Capture the project's real, scrubbed log output (structlog as `configure_logging` sets it)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

import structlog

from stockdata.logs import configure_logging


@contextlib.contextmanager
def log_lines(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """JSON log lines, after every processor (the scrubber included), written to a buffer."""
    buffer = io.StringIO()
    configure_logging(level=level, json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        yield buffer
    finally:
        configure_logging(level="INFO")


def event_names(text: str) -> list[str]:
    """The `event` of every JSON log line in `text` (other lines are skipped)."""
    names = []
    for line in text.splitlines():
        if line.startswith("{"):
            names.append(str(json.loads(line)["event"]))
    return names
