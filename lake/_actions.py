"""Corporate actions as data: the `corporate_actions` table, its validation and writes.

One row per (ticker, exchange_mic, ex_date, kind). Bars stay as traded; adjustment factors
are computed from these rows at read time (lake/_adjust.py). Kinds:

- `split`: `ratio` new shares per old share (2.0 for 2:1, 0.1 for a 1:10 reverse split);
- `stock_dividend`: `ratio` shares after per share before (1.05 for a 5% stock dividend);
- `dividend`: `amount` cash per share, in `currency`, on the ex-date;
- `symbol_change`: `new_symbol` from the ex-date on (kept, not applied to prices).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable

from lake._schema import (
    ACTION_KEY,
    ACTION_KINDS,
    ACTION_SCHEMA,
    ACTIONS_TABLE,
    REJECT_SCHEMA,
    SHARE_KINDS,
)
from lake._settings import LakeSettings
from lake._write import RetryPolicy, _commit_with_retry, open_table, write_rejects
from stockdata.errors import InvalidInputError
from stockdata.logs import get_logger
from stockdata.symbols import SYMBOL_PATTERN

log = get_logger(__name__)

#: Input columns: ACTION_SCHEMA without lineage; ticker, exchange_mic, ex_date, kind required.
ACTION_INPUT_SCHEMA = pa.schema(
    [f for f in ACTION_SCHEMA if f.name not in ("job_id", "ingested_at")]
)
_REQUIRED = ("ticker", "exchange_mic", "ex_date", "kind")
#: The value columns a re-fetch may correct; a row whose values all match is not rewritten.
_VALUES = ("ratio", "amount", "currency", "new_symbol", "declared_date", "source")
#: The API's symbol rule (stockdata.symbols): an action no route could ask for is refused.
_SYMBOL = re.compile(SYMBOL_PATTERN)
#: An ex-date this far past today is a typo, not an announcement.
_MAX_DAYS_AHEAD = 400


def conform_actions(table: pa.Table) -> pa.Table:
    """Cast a batch of actions to ACTION_INPUT_SCHEMA, or fail with the reason."""
    names = set(table.column_names)
    unknown = names - set(ACTION_INPUT_SCHEMA.names)
    if unknown:
        raise InvalidInputError(f"unknown action column(s) {sorted(unknown)}", code="schema")
    missing = set(_REQUIRED) - names
    if missing:
        raise InvalidInputError(f"missing action column(s) {sorted(missing)}", code="schema")
    cols = []
    for field in ACTION_INPUT_SCHEMA:
        if field.name not in names:
            cols.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            cols.append(table.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"action column {field.name!r} has type {table.column(field.name).type}, "
                f"expected {field.type}",
                code="schema",
            ) from exc
    return pa.Table.from_arrays(cols, schema=ACTION_INPUT_SCHEMA)


def _reason(row: dict[str, object], today: dt.date) -> str | None:
    kind, ratio, amount = row["kind"], row["ratio"], row["amount"]
    if not row["ticker"] or not row["exchange_mic"] or row["ex_date"] is None:
        return "ticker, exchange_mic and ex_date are required"
    for field in ("ticker", "new_symbol"):
        value = row[field]
        if value is not None and not _SYMBOL.fullmatch(str(value)):
            return f"{field} {value!r} is not a ticker symbol (1-32 letters, digits, '.', '-')"
    if kind not in ACTION_KINDS:
        return f"unknown kind {kind!r}: one of {', '.join(ACTION_KINDS)}"
    ex = row["ex_date"]
    assert isinstance(ex, dt.date)
    if (ex - today).days > _MAX_DAYS_AHEAD:
        return f"ex_date {ex} is more than {_MAX_DAYS_AHEAD} days ahead"
    if kind in SHARE_KINDS and (
        not isinstance(ratio, float) or not np.isfinite(ratio) or ratio <= 0 or ratio == 1
    ):
        return f"{kind} needs a positive ratio other than 1, got {ratio!r}"
    if kind == "dividend" and (
        not isinstance(amount, float) or not np.isfinite(amount) or amount <= 0
    ):
        return f"dividend needs a positive amount, got {amount!r}"
    if kind == "symbol_change" and not row["new_symbol"]:
        return "symbol_change needs new_symbol"
    return None


def validate_actions(
    actions: pa.Table, *, today: dt.date | None = None
) -> tuple[pa.Table, pa.Table]:
    """(good rows, one per key, the last of duplicates; rejects in REJECT_SCHEMA)."""
    actions = conform_actions(actions)
    today = today or dt.date.today()
    rows = actions.to_pylist()
    keep: dict[tuple[object, ...], int] = {}
    bad: list[dict[str, object]] = []
    now = dt.datetime.now(dt.UTC)
    for i, row in enumerate(rows):
        reason = _reason(row, today)
        if reason is None:
            keep[tuple(row[k] for k in ACTION_KEY)] = i
            continue
        bad.append(
            {
                "job_id": None,
                "ticker": row["ticker"],
                "exchange_mic": row["exchange_mic"],
                "trade_date": None if row["ex_date"] is None else str(row["ex_date"]),
                "raw": json.dumps(row, default=str, sort_keys=True),
                "reason": f"action: {reason}",
                "source": row["source"],
                "rejected_at": now,
            }
        )
    good = actions.take(pa.array(sorted(keep.values()), pa.int64()))
    good = good.sort_by([(k, "ascending") for k in ACTION_KEY])
    return good, pa.Table.from_pylist(bad, schema=REJECT_SCHEMA)


def actions_from_bars(bars: pa.Table) -> pa.Table:
    """The actions carried on bars (a provider's per-bar `split_factor` and `dividend`).

    A split factor of 1 or null is an ordinary day; a dividend of 0 or null is none."""
    if bars.num_rows == 0 or (
        bars.column("split_factor").null_count == bars.num_rows
        and bars.column("dividend").null_count == bars.num_rows
    ):
        return ACTION_INPUT_SCHEMA.empty_table()
    split = bars.column("split_factor")
    is_split = pc.fill_null(pc.and_(pc.not_equal(split, 1.0), pc.greater(split, 0.0)), False)
    div = bars.column("dividend")
    is_div = pc.fill_null(pc.greater(div, 0.0), False)
    parts = []
    for mask, kind in ((is_split, "split"), (is_div, "dividend")):
        sel = bars.filter(mask)
        if sel.num_rows == 0:
            continue
        n = sel.num_rows
        parts.append(
            pa.table(
                {
                    "ticker": sel.column("ticker"),
                    "exchange_mic": sel.column("exchange_mic"),
                    "ex_date": sel.column("trade_date"),
                    "kind": pa.array([kind] * n, pa.string()),
                    "ratio": sel.column("split_factor")
                    if kind == "split"
                    else pa.nulls(n, pa.float64()),
                    "amount": sel.column("dividend")
                    if kind == "dividend"
                    else pa.nulls(n, pa.float64()),
                    "currency": sel.column("currency")
                    if kind == "dividend"
                    else pa.nulls(n, pa.string()),
                    "new_symbol": pa.nulls(n, pa.string()),
                    "declared_date": pa.nulls(n, pa.date32()),
                    "source": sel.column("source"),
                }
            )
        )
    if not parts:
        return ACTION_INPUT_SCHEMA.empty_table()
    return conform_actions(pa.concat_tables(parts))


def ensure_actions_table(settings: LakeSettings) -> DeltaTable:
    from lake._write import ensure_table

    return ensure_table(settings, ACTIONS_TABLE)


def read_actions(settings: LakeSettings, *, version: int | None = None) -> pa.Table:
    """The actions table (at `version`, default the latest) sorted by key; empty if none."""
    table = open_table(settings, ACTIONS_TABLE)
    if table is None:
        return ACTION_SCHEMA.empty_table()
    if version is not None:
        table.load_as_version(version)
    out = table.to_pyarrow_table().cast(ACTION_SCHEMA)
    return out.sort_by([(k, "ascending") for k in ACTION_KEY])


def actions_version(settings: LakeSettings) -> int | None:
    table = open_table(settings, ACTIONS_TABLE)
    return None if table is None else int(table.version())


def _changed(existing: pa.Table, batch: pa.Table) -> pa.Table:
    """Rows of `batch` that are new or whose values differ from the stored row (a join on
    the key, not a pass over every stored action: a daily write of a few actions into a
    table of hundreds of thousands stays a few milliseconds)."""
    if existing.num_rows == 0 or batch.num_rows == 0:
        return batch
    tickers = pc.unique(batch.column("ticker"))
    stored = existing.filter(pc.is_in(existing.column("ticker"), value_set=tickers))
    if stored.num_rows == 0:
        return batch
    left = batch.select([*ACTION_KEY, *_VALUES]).append_column(
        "_row", pa.array(np.arange(batch.num_rows, dtype=np.int64))
    )
    right = stored.select([*ACTION_KEY, *_VALUES]).rename_columns(
        [*ACTION_KEY, *(f"_stored_{v}" for v in _VALUES)]
    )
    right = right.append_column("_found", pa.array(np.ones(right.num_rows, dtype=np.bool_)))
    joined = left.join(right, keys=list(ACTION_KEY), join_type="left outer")
    same = pc.fill_null(joined.column("_found"), False)
    for v in _VALUES:
        new, old = joined.column(v), joined.column(f"_stored_{v}")
        equal = pc.or_(
            pc.and_(pc.is_null(new), pc.is_null(old)), pc.fill_null(pc.equal(new, old), False)
        )
        same = pc.and_(same, equal)
    rows = pc.filter(joined.column("_row"), pc.invert(same)).to_numpy()
    return batch.take(pa.array(np.sort(rows), pa.int64()))


def write_actions(
    settings: LakeSettings,
    actions: pa.Table,
    *,
    job_id: str,
    today: dt.date | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[int, int]:
    """Validate actions and upsert them by (ticker, exchange_mic, ex_date, kind), once per job.

    Rows equal to the stored ones are not rewritten, so re-fetching the same actions commits
    nothing; a corrected value replaces the stored row. Returns (rows written, rows rejected).
    """
    retry = retry or RetryPolicy()
    good, rejects = validate_actions(actions, today=today)
    write_rejects(settings, rejects, job_id=job_id, retry=retry)
    if good.num_rows == 0:
        return 0, rejects.num_rows
    written = 0
    # Only stored rows within the batch's ex-date span can share a key with it: reads and the
    # merge skip every file whose ex_date stats lie outside (a daily write touches the
    # newest files, not the whole history).
    first, last = (v.as_py() for v in pc.min_max(good.column("ex_date")).values())
    span = (pc.field("ex_date") >= pa.scalar(first, pa.date32())) & (
        pc.field("ex_date") <= pa.scalar(last, pa.date32())
    )
    box = f"t.ex_date >= CAST('{first}' AS DATE) AND t.ex_date <= CAST('{last}' AS DATE)"

    def merge(table: DeltaTable, props: CommitProperties) -> dict[str, int]:
        nonlocal written
        existing = table.to_pyarrow_dataset().to_table(filter=span).cast(ACTION_SCHEMA)
        fresh = _changed(existing, good)
        written = fresh.num_rows
        if written == 0:
            return {}
        n = fresh.num_rows
        stamp = np.full(n, np.datetime64(dt.datetime.now(dt.UTC).replace(tzinfo=None), "us"))
        batch = fresh.append_column("job_id", pa.array([job_id] * n, pa.string()))
        batch = batch.append_column(
            "ingested_at", pa.array(stamp, pa.timestamp("us", tz="UTC"))
        ).select(ACTION_SCHEMA.names)
        on = " AND ".join([*(f"t.{k} = s.{k}" for k in ACTION_KEY), box])
        result = (
            table.merge(
                batch.cast(ACTION_SCHEMA),
                predicate=on,
                source_alias="s",
                target_alias="t",
                commit_properties=props,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return {k: int(v) for k, v in result.items() if isinstance(v, int | float)}

    _, version, committed, _ = _commit_with_retry(
        settings, ACTIONS_TABLE, f"{job_id}:actions", merge, retry
    )
    if not committed:
        written = 0
    log.info(
        "actions_written",
        job_id=job_id,
        written=written,
        rejected=rejects.num_rows,
        version=version,
    )
    return written, rejects.num_rows
