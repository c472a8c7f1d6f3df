"""`stockdata serve`: the REST API on a production ASGI server (granian; uvicorn selectable).

Before listening it checks every setting, the flags file and the port, and starts the
embedded Postgres (when no database URL is set) in this process, so it is stopped when the
server stops, on SIGINT or SIGTERM. Granian's, uvicorn's and the Postgres manager's own log
lines are routed through structlog: one format per run."""

from __future__ import annotations

import errno
import logging.config
import os
import shutil
import socket
import tempfile
from pathlib import Path

import click
from litestar import Litestar

import catalog
import lake
from query_api import ApiSettings, create_app
from stockdata.errors import ConfigurationError
from stockdata.logs import (
    LOG_LEVEL_ENV,
    configure_logging_from_env,
    get_logger,
    stdlib_logging_config,
)

log = get_logger(__name__)

#: Import string of the app factory: each server worker process builds its own app.
APP_FACTORY = "stockdata.cli._serve:app_factory"


def app_factory() -> Litestar:
    """The app of one server worker, from STOCKDATA_* settings, logging as `stockdata` was told
    (`--log-level`, `--log-json/--log-text`, handed down through the environment)."""
    configure_logging_from_env()
    logging.config.dictConfig(stdlib_logging_config(_log_level()))
    return create_app(freeze_gc=True)


def _log_level() -> str:
    return os.environ.get(LOG_LEVEL_ENV, "INFO")


@click.command()
@click.option("--host", default=None, help="Interface to bind [STOCKDATA_API_HOST, 127.0.0.1].")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Port [STOCKDATA_API_PORT, 8000]."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Worker processes [STOCKDATA_API_WORKERS, one per core].",
)
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default=None,
    help="ASGI server [STOCKDATA_API_SERVER, granian].",
)
def serve(host: str | None, port: int | None, workers: int | None, server: str | None) -> None:
    """Serve the REST API (docs at /docs, health at /health/ready, metrics at /metrics)."""
    settings = ApiSettings()
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers or default_workers()
    server = server or settings.api_server
    check_port(host, port)
    check_settings()
    logging.config.dictConfig(stdlib_logging_config(_log_level()))
    database = catalog.DatabaseSettings()
    if database.embedded:
        # this process becomes a user of the embedded server: it stops when this process
        # exits after the server's shutdown (the workers, killed or not, are forgotten)
        catalog.database_url(database)
    log.info("serving", url=f"http://{host}:{port}", server=server, workers=workers)
    # The workers share their metric counts through a directory of this run (see
    # query_api/_metrics.py), handed down like the logging options: in the environment.
    parent = settings.api_metrics_dir
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    shared = tempfile.mkdtemp(prefix="stockdata-metrics-", dir=parent)
    os.environ["STOCKDATA_API_METRICS_DIR"] = shared
    try:
        run_server(host=host, port=port, workers=workers, server=server)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def default_workers() -> int:
    """One worker per core this process may run on (a container's CPU set, not the host's)."""
    return max(1, len(os.sched_getaffinity(0)))


def check_settings() -> None:
    """Every setting the app reads, and the flags file, checked before listening: a bad one
    is a one-line error here, not a crash loop in the workers."""
    from query_api._auth import AuthSettings
    from query_api._flags import FeatureFlags, FlagSettings
    from query_api._hardening import SecuritySettings
    from query_api._sandbox import SqlSettings

    lake.LakeSettings()
    catalog.DatabaseSettings()
    AuthSettings()
    SecuritySettings()
    SqlSettings()
    flag_settings = FlagSettings()
    key = flag_settings.flagsmith_environment_key
    if key is None or not key.get_secret_value():  # offline: read the document now
        if flag_settings.flags_file is not None and not flag_settings.flags_file.is_file():
            raise ConfigurationError(
                f"STOCKDATA_FLAGS_FILE {flag_settings.flags_file} does not exist: fix the path "
                "or unset it"
            )
        FeatureFlags(flag_settings).close()


def check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on (granian's SO_REUSEPORT would share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} on {host} is already in use (another `stockdata serve`?): "
                    "stop it or choose --port"
                ) from None
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def run_server(*, host: str, port: int, workers: int, server: str) -> None:
    """Run the API in the foreground until interrupted."""
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            APP_FACTORY,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            lifespan="on",
            proxy_headers=False,
            factory=True,
        )
        return
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        APP_FACTORY,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        log_access=False,
        log_dictconfig=stdlib_logging_config(_log_level()),
        respawn_failed_workers=True,
        factory=True,
    ).serve()
