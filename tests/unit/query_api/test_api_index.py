"""The hot index: positions in session order, ranges, and exact-date lookups."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from query_api import _models as m
from query_api._data import BAR_SCHEMA
from query_api._index import INDEX_COLUMNS, HotIndex


def _index() -> HotIndex:
    rows = [
        ("AAA", "XNAS", dt.date(1969, 12, 30), 1.0),
        ("AAA", "XNAS", dt.date(1969, 12, 31), 2.0),
        ("AAA", "XNAS", dt.date(1970, 1, 2), 4.0),
        ("BBB", "XNAS", dt.date(1970, 1, 2), 10.0),
        ("BBB", "XNYS", dt.date(1970, 1, 1), 7.0),
    ]
    cols: dict[str, pa.Array] = {
        "ticker": pa.array([r[0] for r in rows]),
        "exchange_mic": pa.array([r[1] for r in rows]),
        "trade_date": pa.array([r[2] for r in rows], pa.date32()),
    }
    for name in INDEX_COLUMNS[3:]:
        if name in {"currency", "source"}:
            cols[name] = pa.nulls(len(rows), pa.string())
        elif name == "volume":
            cols[name] = pa.array([1] * len(rows), pa.int64())
        elif name in {"open", "high", "low", "close"}:
            cols[name] = pa.array([r[3] for r in rows], pa.float64())
        else:
            cols[name] = pa.nulls(len(rows), pa.float64())
    return HotIndex(pa.table(cols), version=7)


def test_series_and_symbols() -> None:
    index = _index()
    assert index.series == [("AAA", "XNAS"), ("BBB", "XNAS"), ("BBB", "XNYS")]
    assert index.sid_of == {("AAA", "XNAS"): 0, ("BBB", "XNAS"): 1, ("BBB", "XNYS"): 2}
    assert list(index.all_sids("XNAS")) == [0, 1]


def test_point_finds_the_exact_session_of_one_series_only() -> None:
    index = _index()
    d = dt.date
    assert [index.point(0, day) for day in (d(1969, 12, 30), d(1969, 12, 31), d(1970, 1, 2))] == [
        0,
        1,
        2,
    ]
    # no bar that day, before the first or after the last bar of the run, or in a
    # neighbouring run (BBB on XNAS has 1970-01-02; AAA does not have 1970-01-01)
    assert [index.point(0, day) for day in (d(1970, 1, 1), d(1969, 1, 1), d(1970, 1, 5))] == [
        None,
        None,
        None,
    ]
    assert (index.point(1, d(1970, 1, 2)), index.point(1, d(1969, 12, 31))) == (3, None)
    assert (index.point(2, d(1970, 1, 1)), index.point(2, d(1970, 1, 2))) == (4, None)
    assert index.point_row(2, d(1970, 1, 1), adjusted=False) == (
        4,
        ("BBB", "XNYS", d(1970, 1, 1), 7.0, 7.0, 7.0, 7.0, 1, None, None, None, None),
    )


def test_ranges_work_across_1970() -> None:
    index = _index()
    assert index.range(0, dt.date(1969, 12, 31), None) == (1, 3)
    assert index.range(0, None, dt.date(1969, 12, 31)) == (0, 2)
    assert index.range(0, dt.date(1971, 1, 1), None) == (3, 3)


def test_positions_count_sessions_not_days() -> None:
    index = _index()
    sids = np.asarray([0], dtype=np.int64)
    pos = index.positions(sids, dt.date(1970, 1, 2), 2, exact=True)
    assert (int(pos.end[0]), int(pos.start[0])) == (2, 0)
    too_far = index.positions(sids, dt.date(1970, 1, 2), 3, exact=True)
    assert int(too_far.start[0]) == -1
    holiday = index.positions(sids, dt.date(1970, 1, 1), 1, exact=False)
    assert (int(holiday.end[0]), int(holiday.start[0])) == (1, 0)
    exact_miss = index.positions(sids, dt.date(1970, 1, 1), 1, exact=True)
    assert int(exact_miss.end[0]) == -1
    latest = index.positions(np.asarray([0, 1], dtype=np.int64), None, 1, exact=False)
    assert list(latest.end) == [2, 3]
    assert list(latest.start) == [1, -1]
    assert list(index.closes(adjusted=True)) == [1.0, 2.0, 4.0, 10.0, 7.0]


def test_bar_rows_follow_the_wire_models_field_order() -> None:
    # Bars.rows() builds `m.Bar(*row)`: BAR_SCHEMA's columns and the index's rows must be in
    # the model's field order.
    assert tuple(BAR_SCHEMA.names) == m.Bar.__struct_fields__
    index = _index()
    pos = np.asarray([4, 0], dtype=np.int64)
    rows = index.rows_at(pos, adjusted=False)
    assert rows == [
        ("BBB", "XNYS", dt.date(1970, 1, 1), 7.0, 7.0, 7.0, 7.0, 1, None, None, None, None),
        ("AAA", "XNAS", dt.date(1969, 12, 30), 1.0, 1.0, 1.0, 1.0, 1, None, None, None, None),
    ]
    assert [m.Bar(*row).close for row in rows] == [7.0, 1.0]
