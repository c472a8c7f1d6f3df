"""Writes: idempotent, concurrent-safe, validated; read back by three independent readers."""

from __future__ import annotations

import csv
import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import lake
from stockdata.errors import InvalidInputError

TODAY = dt.date(2026, 1, 2)


def _count(settings: lake.LakeSettings, sql: str) -> int:
    con = lake.connect(settings)
    try:
        return int(con.execute(sql).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def test_two_concurrent_writers_of_msft_leave_exactly_7983_rows(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    barrier = threading.Barrier(2)
    results: dict[str, lake.WriteMetrics] = {}
    errors: list[BaseException] = []

    def writer(job_id: str) -> None:
        try:
            barrier.wait()
            results[job_id] = lake.write_bars(lake_settings, msft_bars, job_id=job_id, today=TODAY)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(j,)) for j in ("job-a", "job-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(m.committed for m in results.values()) == [True, True]
    assert sorted(m.rows_inserted for m in results.values()) == [0, 7983]
    assert sorted(m.rows_updated for m in results.values()) == [0, 7983]
    assert _count(lake_settings, "select count(*) from eod where ticker = 'MSFT'") == 7983
    assert _count(lake_settings, "select count(distinct (ticker, trade_date)) from eod") == 7983
    table = DeltaTable(
        lake_settings.table_uri(lake.EOD_TABLE), storage_options=lake_settings.storage_options()
    )
    assert table.transaction_version("job-a") == 1
    assert table.transaction_version("job-b") == 1


def test_a_replayed_job_commits_nothing(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    first = lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    assert (first.committed, first.rows_inserted, first.version) == (True, 7983, 1)
    replay = lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    assert (replay.committed, replay.rows_written, replay.version) == (False, 0, 1)
    table = DeltaTable(
        lake_settings.table_uri(lake.EOD_TABLE), storage_options=lake_settings.storage_options()
    )
    assert table.version() == 1
    assert _count(lake_settings, "select count(*) from eod") == 7983


def test_21_session_change_on_2008_10_10_matches_the_csv(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table, samples: Path
) -> None:
    with (samples / "MSFT.csv").open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["Date"])
    i = next(k for k, r in enumerate(rows) if r["Date"] == "2008-10-10")
    close, before = float(rows[i]["Close"]), float(rows[i - 21]["Close"])
    lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    con = lake.connect(lake_settings)
    got = con.execute(
        "select close, close_21_ago, change_21, pct_change_21 from eod_deltas "
        "where ticker = 'MSFT' and trade_date = DATE '2008-10-10'"
    ).fetchall()
    con.close()
    assert got[0][:3] == (close, before, close - before)
    assert got[0][3] == pytest.approx((close / before - 1) * 100, abs=1e-6)
    assert rows[i - 21]["Date"] == "2008-09-11"


def _bad_batch(msft_bars: pa.Table) -> pa.Table:
    good = msft_bars.slice(0, 3)
    rows = good.to_pylist()
    high_low = {**rows[0], "trade_date": dt.date(2020, 1, 2), "high": 1.0, "low": 2.0}
    negative = {**rows[0], "trade_date": dt.date(2020, 1, 3), "volume": -5}
    dup1 = {**rows[0], "trade_date": dt.date(2020, 1, 6)}
    dup2 = {**rows[1], "trade_date": dt.date(2020, 1, 6)}
    return pa.Table.from_pylist([*rows, high_low, negative, dup1, dup2], schema=good.schema)


def test_a_bad_batch_sends_bad_rows_to_rejects_with_reasons(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    metrics = lake.write_bars(lake_settings, _bad_batch(msft_bars), job_id="job-bad", today=TODAY)
    assert (metrics.rows_written, metrics.rows_rejected) == (3, 4)
    con = lake.connect(lake_settings)
    stored = con.execute("select trade_date from eod order by trade_date").fetchall()
    rejects = con.execute(
        "select job_id, ticker, trade_date, reason from eod_rejects order by trade_date, reason"
    ).fetchall()
    con.close()
    assert stored == [(dt.date(1986, 3, 13),), (dt.date(1986, 3, 14),), (dt.date(1986, 3, 17),)]
    assert rejects == [
        ("job-bad", "MSFT", "2020-01-02", "high < low"),
        ("job-bad", "MSFT", "2020-01-03", "volume must be >= 0"),
        ("job-bad", "MSFT", "2020-01-06", "duplicate (ticker, trade_date) in the batch"),
        ("job-bad", "MSFT", "2020-01-06", "duplicate (ticker, trade_date) in the batch"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.append_column("pe_ratio", pa.array([1.0] * t.num_rows)),
            "unknown column(s) ['pe_ratio'] in the batch",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("close"), "close", pa.array(["abc"] * t.num_rows)
            ),
            "column 'close' has type string, expected double",
        ),
        (lambda t: t.drop_columns(["volume"]), "missing column(s) ['volume'] in the batch"),
    ],
)
def test_a_malformed_batch_fails_clearly_and_commits_nothing(
    lake_settings: lake.LakeSettings,
    msft_bars: pa.Table,
    change: Callable[[pa.Table], pa.Table],
    message: str,
) -> None:
    lake.write_bars(lake_settings, msft_bars.slice(0, 10), job_id="job-0", today=TODAY)
    with pytest.raises(InvalidInputError) as err:
        lake.write_bars(lake_settings, change(msft_bars.slice(10, 10)), job_id="job-x", today=TODAY)
    assert str(err.value).startswith(message)
    assert err.value.code == "schema"
    table = DeltaTable(
        lake_settings.table_uri(lake.EOD_TABLE), storage_options=lake_settings.storage_options()
    )
    assert table.version() == 1
    assert table.transaction_version("job-x") is None
    assert _count(lake_settings, "select count(*) from eod") == 10
    assert _count(lake_settings, "select count(*) from eod_rejects") == 0


def test_duckdb_polars_and_deltalake_read_identical_rows(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    synthetic = lake.synthetic_bars(
        ["AAA", "BBB"], date_from=dt.date(2024, 12, 1), date_to=dt.date(2025, 1, 31)
    )
    lake.write_bars(lake_settings, synthetic, job_id="job-2", today=TODAY)
    uri, opts = lake_settings.table_uri(lake.EOD_TABLE), lake_settings.storage_options()
    order = [("ticker", "ascending"), ("trade_date", "ascending")]

    con = lake.connect(lake_settings)
    via_duckdb = con.execute("select * from eod").to_arrow_table().sort_by(order)
    con.close()
    via_polars = pl.read_delta(uri, storage_options=opts or None).to_arrow().sort_by(order)
    via_deltalake = pa.table(DeltaTable(uri, storage_options=opts).to_pyarrow_table()).sort_by(
        order
    )

    assert via_deltalake.num_rows == 7983 + 82
    columns = lake.EOD_SCHEMA.names
    for other in (via_duckdb, via_polars):
        assert other.num_rows == via_deltalake.num_rows
        for name in columns:
            expected = via_deltalake.column(name).to_pylist()
            assert other.column(name).to_pylist() == expected, name


def test_protocol_stays_minimal(lake_settings: lake.LakeSettings, msft_bars: pa.Table) -> None:
    lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    lake.optimize(lake_settings)
    table = DeltaTable(
        lake_settings.table_uri(lake.EOD_TABLE), storage_options=lake_settings.storage_options()
    )
    protocol = table.protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert protocol.reader_features is None
    assert protocol.writer_features is None
    config = table.metadata().configuration
    assert config["delta.enableDeletionVectors"] == "false"
    assert config["delta.columnMapping.mode"] == "none"
    assert table.metadata().partition_columns == ["period"]


def test_checkpoints_are_written_every_20_commits(
    lake_settings: lake.LakeSettings,
    msft_bars: pa.Table,
    log_files: Callable[[lake.LakeSettings], list[str]],
) -> None:
    for k in range(21):
        lake.write_bars(lake_settings, msft_bars.slice(k, 1), job_id=f"job-{k}", today=TODAY)
    names = log_files(lake_settings)
    # delta-rs checkpoints after every 20th commit: versions 0..19 make the first one.
    assert [n for n in names if "checkpoint" in n] == [
        "00000000000000000019.checkpoint.parquet",
        "_last_checkpoint",
    ]


def test_cross_section_from_eod_equals_eod_deltas(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    lake.write_bars(lake_settings, msft_bars, job_id="job-1", today=TODAY)
    others = lake.synthetic_bars(
        ["AAA", "BBB"],
        exchange_mic="XNAS",
        date_from=dt.date(2007, 1, 1),
        date_to=dt.date(2008, 12, 31),
    )
    lake.write_bars(lake_settings, others, job_id="job-2", today=TODAY)
    day = dt.date(2008, 10, 10)
    reader = lake.LakeReader(lake_settings)
    try:
        got = reader.cross_section(day, exchange_mic="XNAS").to_pylist()
        expected = (
            reader.connection()
            .execute(
                "select * exclude (adj_close, prev_close) from eod_deltas "
                "where trade_date = ? order by ticker",
                [day],
            )
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        reader.close()
    assert [r["ticker"] for r in got] == ["AAA", "BBB", "MSFT"]
    assert got == expected


def test_the_guarded_append_loses_a_race_instead_of_duplicating(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    """The fast path's premise: two appends of the same key box from one snapshot conflict."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    from lake._write import _append_predicate, _with_lineage, ensure_table

    ensure_table(lake_settings, lake.EOD_TABLE)
    batch = _with_lineage(
        lake.validate(msft_bars, today=TODAY).good,
        job_id="race",
        granularity="year",
        now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    uri, opts = lake_settings.table_uri(lake.EOD_TABLE), lake_settings.storage_options()
    first, second = DeltaTable(uri, storage_options=opts), DeltaTable(uri, storage_options=opts)
    write_deltalake(first, batch, mode="overwrite", predicate=_append_predicate(batch))
    with pytest.raises(CommitFailedError, match="concurrent transaction"):
        write_deltalake(second, batch, mode="overwrite", predicate=_append_predicate(batch))
    # ...and write_bars on the stale view retries into a MERGE: still 7,983 rows
    metrics = lake.write_bars(lake_settings, msft_bars, job_id="job-late", today=TODAY)
    assert (metrics.rows_inserted, metrics.rows_updated) == (0, 7983)
    assert _count(lake_settings, "select count(*) from eod") == 7983
