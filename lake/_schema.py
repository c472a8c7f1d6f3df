"""Table names and Arrow schemas of the lake."""

from __future__ import annotations

import pyarrow as pa

EOD_TABLE = "eod_prices"
REJECTS_TABLE = "eod_rejects"
ACTIONS_TABLE = "corporate_actions"
#: The date-ordered copy of eod_prices that older versions wrote; only `lake drop-by-date`
#: still names it (docs/adr/0009-retire-eod-by-date.md).
BY_DATE_TABLE = "eod_by_date"

#: What a provider hands the lake: one row per (ticker, trade_date).
BAR_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.string(), nullable=False),
        pa.field("exchange_mic", pa.string(), nullable=False),
        pa.field("trade_date", pa.date32(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.int64(), nullable=False),
        pa.field("adj_open", pa.float64()),
        pa.field("adj_high", pa.float64()),
        pa.field("adj_low", pa.float64()),
        pa.field("adj_close", pa.float64()),
        pa.field("adj_volume", pa.float64()),
        pa.field("split_factor", pa.float64()),
        pa.field("dividend", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("source", pa.string()),
    ]
)
REQUIRED_BAR_COLUMNS = frozenset(f.name for f in BAR_SCHEMA if not f.nullable)
#: The float64 columns of a bar, in schema order (prices, adjusted prices and volume,
#: split factor, dividend).
FLOAT_BAR_COLUMNS = tuple(f.name for f in BAR_SCHEMA if pa.types.is_floating(f.type))

#: `eod_prices`: the bars plus lineage and the partition column.
EOD_SCHEMA = pa.schema(
    [
        *BAR_SCHEMA,
        pa.field("job_id", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("period", pa.string(), nullable=False),
    ]
)

#: `corporate_actions`: splits, dividends and their kin, one row per ACTION_KEY (lake/_actions.py).
ACTION_SCHEMA = pa.schema(
    [
        pa.field("ticker", pa.string(), nullable=False),
        pa.field("exchange_mic", pa.string(), nullable=False),
        pa.field("ex_date", pa.date32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("ratio", pa.float64()),
        pa.field("amount", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("new_symbol", pa.string()),
        pa.field("declared_date", pa.date32()),
        pa.field("source", pa.string()),
        pa.field("job_id", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
ACTION_KEY = ("ticker", "exchange_mic", "ex_date", "kind")
ACTION_KINDS = ("split", "stock_dividend", "dividend", "symbol_change")
#: Kinds that change the share count: prices divide by `ratio`, volumes multiply by it.
SHARE_KINDS = ("split", "stock_dividend")

#: `eod_rejects`: rows that failed validation, their raw values as text, and why.
REJECT_SCHEMA = pa.schema(
    [
        pa.field("job_id", pa.string()),
        pa.field("ticker", pa.string()),
        pa.field("exchange_mic", pa.string()),
        pa.field("trade_date", pa.string()),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("rejected_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

#: Table properties that keep the protocol minimal so Spark, Databricks, Fabric and Power BI
#: read the tables: no deletion vectors, no column mapping, stats on the clustering columns.
TABLE_CONFIGURATION = {
    "delta.enableDeletionVectors": "false",
    "delta.columnMapping.mode": "none",
    "delta.checkpointInterval": "20",
    "delta.dataSkippingStatsColumns": "ticker,exchange_mic,trade_date,period",
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}
