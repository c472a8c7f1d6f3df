"""Rejects are recorded once per row: a replay adds nothing, and a later job rejecting the
same row (a re-load of the file with one more row) does not add it again."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

import lake
from tests.integration.lake.test_lake_writes import TODAY, _bad_batch


def _rejects(settings: lake.LakeSettings) -> list[tuple[str, str, str]]:
    con = lake.connect(settings)
    try:
        rows = con.execute(
            "select job_id, trade_date, reason from eod_rejects order by trade_date, raw"
        ).fetchall()
    finally:
        con.close()
    return [tuple(r) for r in rows]


def test_rejects_are_recorded_once_per_row(
    lake_settings: lake.LakeSettings, msft_bars: pa.Table
) -> None:
    batch = _bad_batch(msft_bars)
    first = lake.write_bars(lake_settings, batch, job_id="job-a", today=TODAY)
    replay = lake.write_bars(lake_settings, batch, job_id="job-a", today=TODAY)
    extra = {**batch.to_pylist()[0], "trade_date": dt.date(2020, 1, 7)}
    longer = pa.concat_tables([batch, pa.Table.from_pylist([extra], schema=batch.schema)])
    second = lake.write_bars(lake_settings, longer, job_id="job-b", today=TODAY)
    assert (first.rows_rejected, replay.rows_rejected, second.rows_rejected) == (4, 4, 4)
    assert _rejects(lake_settings) == [
        ("job-a", "2020-01-02", "high < low"),
        ("job-a", "2020-01-03", "volume must be >= 0"),
        ("job-a", "2020-01-06", "duplicate (ticker, trade_date) in the batch"),
        ("job-a", "2020-01-06", "duplicate (ticker, trade_date) in the batch"),
    ]
