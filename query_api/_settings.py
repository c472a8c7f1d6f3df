"""Settings of the HTTP API: where it listens, how fresh and how large its answers may be."""

from __future__ import annotations

from pydantic import Field

from stockdata.config import StockdataSettings


class ApiSettings(StockdataSettings):
    """The REST API. Every default serves the embedded profile (`stockdata serve`, `make demo`)."""

    api_host: str = Field(default="127.0.0.1", description="Interface `stockdata serve` binds.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port `stockdata serve` binds.")
    api_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Server worker processes (unset: one per core available to the process).",
    )
    api_metrics_dir: str | None = Field(
        default=None,
        description="Per-run directory where server workers share their metric counts "
        "(`stockdata serve` creates one when unset; /metrics sums every worker's).",
    )
    api_server: str = Field(
        default="granian", description="ASGI server for `stockdata serve`: granian or uvicorn."
    )
    api_lake_poll_seconds: float = Field(
        default=2.0,
        ge=0.0,
        le=3600.0,
        description="A background thread checks the Delta log for a new version this often "
        "(0: every request checks).",
    )
    api_staleness_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=86_400.0,
        description="A cached answer is never older than this (also the longest max-age sent).",
    )
    api_cache_entries: int = Field(
        default=20_000, ge=0, le=10_000_000, description="Responses kept in the per-process cache."
    )
    api_cache_mb: int = Field(
        default=64,
        ge=0,
        le=65_536,
        description="Most MiB of response bodies the per-process cache holds (an answer "
        "above an eighth of it is not cached).",
    )
    api_serving: bool = Field(
        default=True,
        description="Answer reads from the serving form of the current lake version "
        "(memory-mapped, shared by the workers; built by `lake publish`, or by one worker "
        "if missing). Off: DuckDB over Delta answers everything.",
    )
    api_serving_grace_seconds: float = Field(
        default=120.0,
        ge=0.0,
        le=86_400.0,
        description="After a new lake version appears, the previous serving form keeps "
        "answering (with its own lake_version) this long while the new one is published; "
        "then DuckDB answers the new version until it is.",
    )
    api_max_page_size: int = Field(
        default=5_000, ge=1, le=1_000_000, description="Largest `limit` of a paginated JSON page."
    )
    api_default_page_size: int = Field(
        default=100, ge=1, le=1_000_000, description="`limit` when the request has none."
    )
    api_max_range_years: int = Field(
        default=25, ge=1, le=200, description="Longest from..to span one request may ask for."
    )
    api_max_delta_days: int = Field(
        default=2_520, ge=1, le=100_000, description="Largest N of an N-session delta."
    )
    api_duckdb_threads: int | None = Field(
        default=None, ge=1, le=256, description="DuckDB threads of the reader (unset: all cores)."
    )
    api_public_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL shown in the OpenAPI servers list."
    )
