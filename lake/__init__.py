"""The lake: Delta tables of EoD bars on local disk or ADLS, written idempotently, read by DuckDB."""

from lake._calendar import all_sessions, exchange_calendar, sessions_through
from lake._maintenance import (
    OptimizeMetrics,
    TableInfo,
    checkpoint,
    optimize,
    partitions_to_optimize,
    restore,
    table_info,
    vacuum,
    version_as_of,
)
from lake._reader import (
    DELTA_WINDOWS,
    LakeReader,
    connect,
    cross_section_sql,
    extension_path,
    init_sql,
    views_sql,
)
from lake._schema import (
    BAR_SCHEMA,
    BY_DATE_SCHEMA,
    BY_DATE_TABLE,
    EOD_SCHEMA,
    EOD_TABLE,
    FLOAT_BAR_COLUMNS,
    REJECT_SCHEMA,
    REJECTS_TABLE,
    TABLE_CONFIGURATION,
)
from lake._settings import LakeSettings
from lake._synthetic import synthetic_bars
from lake._validate import RowCheck, Validated, conform, validate
from lake._write import (
    RetryPolicy,
    WriteMetrics,
    ensure_table,
    open_table,
    write_bars,
    write_rejects,
)

__all__ = [
    "BAR_SCHEMA",
    "BY_DATE_SCHEMA",
    "BY_DATE_TABLE",
    "DELTA_WINDOWS",
    "EOD_SCHEMA",
    "EOD_TABLE",
    "FLOAT_BAR_COLUMNS",
    "REJECTS_TABLE",
    "REJECT_SCHEMA",
    "TABLE_CONFIGURATION",
    "LakeReader",
    "LakeSettings",
    "OptimizeMetrics",
    "RetryPolicy",
    "RowCheck",
    "TableInfo",
    "Validated",
    "WriteMetrics",
    "all_sessions",
    "checkpoint",
    "conform",
    "connect",
    "cross_section_sql",
    "ensure_table",
    "exchange_calendar",
    "extension_path",
    "init_sql",
    "open_table",
    "optimize",
    "partitions_to_optimize",
    "restore",
    "sessions_through",
    "synthetic_bars",
    "table_info",
    "vacuum",
    "validate",
    "version_as_of",
    "views_sql",
    "write_bars",
    "write_rejects",
]
