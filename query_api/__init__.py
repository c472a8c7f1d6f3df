"""The HTTP API: Litestar over the lake (DuckDB) and the catalog (Postgres)."""

from query_api._app import create_app
from query_api._settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
