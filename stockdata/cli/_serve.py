"""`stockdata serve`: the REST API on a production ASGI server (granian; uvicorn selectable)."""

from __future__ import annotations

import click
from litestar import Litestar

from query_api import ApiSettings, create_app
from stockdata.logs import configure_logging_from_env

#: Import string of the app factory: each server worker process builds its own app.
APP_FACTORY = "stockdata.cli._serve:app_factory"


def app_factory() -> Litestar:
    """The app of one server worker, from STOCKDATA_* settings, logging as `stockdata` was told
    (`--log-level`, `--log-json/--log-text`, handed down through the environment)."""
    configure_logging_from_env()
    return create_app(freeze_gc=True)


@click.command()
@click.option("--host", default=None, help="Interface to bind [STOCKDATA_API_HOST, 127.0.0.1].")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Port [STOCKDATA_API_PORT, 8000]."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Worker processes [STOCKDATA_API_WORKERS, 1].",
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
    workers = workers or settings.api_workers
    server = server or settings.api_server
    click.echo(f"serving the API on http://{host}:{port} ({server}, {workers} worker(s))", err=True)
    run_server(host=host, port=port, workers=workers, server=server)


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
        respawn_failed_workers=True,
        factory=True,
    ).serve()
