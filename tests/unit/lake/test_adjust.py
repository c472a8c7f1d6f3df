"""The adjustment arithmetic: vectorised, per-series and scalar paths give the same doubles."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from lake._adjust import (
    apply_prices,
    apply_volumes,
    build_adjustment,
    factor_columns,
    round_price,
    round_prices,
)

D = dt.date
EPOCH = D(1970, 1, 1).toordinal()


def day(d: dt.date) -> int:
    return d.toordinal() - EPOCH


def _adjustment() -> object:
    actions = pa.table(
        {
            "ticker": ["A", "A", "A", "B", "B"],
            "exchange_mic": ["XNYS"] * 5,
            "ex_date": pa.array(
                [D(2020, 1, 10), D(2020, 6, 1), D(2020, 6, 1), D(2021, 1, 4), D(2019, 1, 2)],
                pa.date32(),
            ),
            "kind": ["split", "split", "dividend", "stock_dividend", "dividend"],
            "ratio": [2.0, 0.5, None, 1.05, None],
            "amount": [None, None, 1.0, None, 0.5],
            "prev_close": [40.0, 100.0, 100.0, 10.0, 5.0],
        }
    )
    return build_adjustment(factor_columns(actions))


def test_factor_columns_follow_the_method() -> None:
    t = factor_columns(
        pa.table(
            {
                "kind": ["split", "dividend", "dividend", "dividend", "symbol_change"],
                "ratio": [4.0, None, None, None, None],
                "amount": [None, 2.0, 20.0, 1.0, None],
                "prev_close": [80.0, 100.0, 10.0, None, 10.0],
            }
        )
    )
    assert t.column("split_price_factor").to_pylist() == [0.25, 1.0, 1.0, 1.0, 1.0]
    # a dividend above its price or with no price before it: factor 1
    assert t.column("price_factor").to_pylist() == [0.25, 0.98, 1.0, 1.0, 1.0]
    assert t.column("volume_factor").to_pylist() == [4.0, 1.0, 1.0, 1.0, 1.0]


def test_factors_by_basis_and_as_of() -> None:
    adj = _adjustment()
    a, b = adj.id_of["A", "XNYS"], adj.id_of["B", "XNYS"]  # type: ignore[attr-defined]
    rows = [
        (a, D(2020, 1, 9)),  # before both of A's dates
        (a, D(2020, 1, 10)),  # on the first ex-date: only June applies
        (a, D(2020, 6, 1)),  # on the last: none
        (b, D(2018, 12, 31)),
        (-1, D(2018, 12, 31)),  # a series with no actions
    ]
    ids = np.asarray([r[0] for r in rows], np.int64)
    days = np.asarray([day(r[1]) for r in rows], np.int64)
    f_split, v_split = adj.factors(ids, days, "splits")  # type: ignore[attr-defined]
    # June's 1:2 reverse split (x2) and January's 2:1 (x0.5); B's 5% stock dividend
    assert f_split.tolist() == [0.5 * 2.0, 2.0, 1.0, 1 / 1.05, 1.0]
    assert v_split.tolist() == [2.0 * 0.5, 0.5, 1.0, 1.05, 1.0]
    f_all, _ = adj.factors(ids, days, "all")  # type: ignore[attr-defined]
    assert f_all.tolist() == [(2.0 * 0.99) * 0.5, 2.0 * 0.99, 1.0, (1 / 1.05) * 0.9, 1.0]
    # as of 2020-03-01 only January's split is known
    f_asof, _ = adj.factors(ids, days, "all", D(2020, 3, 1))  # type: ignore[attr-defined]
    assert f_asof.tolist() == pytest.approx([0.5, 1.0, 1.0, 0.9, 1.0], rel=1e-15)
    for basis in ("splits", "all"):
        for as_of in (None, D(2020, 3, 1), D(2019, 6, 1)):
            vec = adj.factors(ids, days, basis, as_of)  # type: ignore[attr-defined]
            scalar = [adj.factor_at(int(i), int(d), basis, as_of) for i, d in zip(ids, days)]  # type: ignore[attr-defined]
            assert [tuple(x) for x in zip(*vec)] == scalar
            mask = ids == a
            series = adj.series_factors(a, days[mask], basis, as_of)  # type: ignore[attr-defined]
            assert series[0].tolist() == vec[0][mask].tolist()
            assert series[1].tolist() == vec[1][mask].tolist()
    none = adj.factors(ids, days, "none")  # type: ignore[attr-defined]
    assert none[0].tolist() == [1.0] * 5


def test_an_empty_adjustment_changes_nothing() -> None:
    empty = build_adjustment(
        factor_columns(
            pa.table(
                {
                    "ticker": pa.array([], pa.string()),
                    "exchange_mic": pa.array([], pa.string()),
                    "ex_date": pa.array([], pa.date32()),
                    "kind": pa.array([], pa.string()),
                    "ratio": pa.array([], pa.float64()),
                    "amount": pa.array([], pa.float64()),
                    "prev_close": pa.array([], pa.float64()),
                }
            )
        )
    )
    f, v = empty.factors(np.asarray([-1, -1]), np.asarray([1, 2]), "all")
    assert f.tolist() == v.tolist() == [1.0, 1.0]
    assert empty.factor_at(-1, 5, "all") == (1.0, 1.0)


def test_rounding_matches_duckdb_and_the_scalar_path() -> None:
    import duckdb

    x = np.random.default_rng(4).lognormal(0.0, 3.0, 20_000)
    ours = round_prices(x)
    con = duckdb.connect()
    con.register("t", pa.table({"x": x}))
    theirs = np.asarray([v for (v,) in con.execute("SELECT round(x, 10) FROM t").fetchall()])
    assert (ours == theirs).all()
    assert [round_price(float(v)) for v in x[:2000]] == ours[:2000].tolist()
    assert apply_prices(np.asarray([24.16032]), np.asarray([1 / 288])).tolist() == [0.08389]
    assert apply_volumes(np.asarray([1000, 3]), np.asarray([2.5, 0.5])).tolist() == [2500, 2]
