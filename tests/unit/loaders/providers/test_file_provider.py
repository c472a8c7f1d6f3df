"""The file provider on the bundled samples and on files written by the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lake
from loaders.providers import FileProvider, get_provider, normalise_column
from stockdata.errors import InvalidInputError, NotFoundError

ALL = {"date_from": dt.date(1900, 1, 1), "date_to": dt.date(2100, 1, 1)}


def test_msft_sample_csv(samples: Path) -> None:
    p = get_provider("file", None, path=samples / "MSFT.csv", ticker="msft", exchange_mic="xnas")
    assert isinstance(p, FileProvider)
    table = p.fetch_bars(["MSFT"], exchange_mic="XNAS", **ALL)
    assert table.schema == lake.BAR_SCHEMA
    assert table.num_rows == 7983
    first, last = table.slice(0, 1).to_pylist()[0], table.slice(7982, 1).to_pylist()[0]
    assert (first["trade_date"], first["close"], first["volume"]) == (
        dt.date(1986, 3, 13),
        0.07533,
        1371330506,
    )
    assert (last["trade_date"], last["open"], last["high"], last["low"], last["close"]) == (
        dt.date(2017, 11, 10),
        83.79,
        84.095,
        83.23,
        83.87,
    )
    assert (last["ticker"], last["exchange_mic"], last["source"], last["adj_close"]) == (
        "MSFT",
        "XNAS",
        "file",
        None,
    )
    assert p.date_range() == (dt.date(1986, 3, 13), dt.date(2017, 11, 10))
    assert lake.validate(table, today=dt.date(2020, 1, 1)).rejects.num_rows == 0


def test_date_range_filter_and_ticker_from_symbols(samples: Path) -> None:
    p = FileProvider(path=samples / "GOOG.csv", exchange_mic="XNAS")
    table = p.fetch_bars(
        ["GOOG"], exchange_mic="XNAS", date_from=dt.date(2013, 2, 25), date_to=dt.date(2013, 3, 1)
    )
    assert table.column("close").to_pylist() == [790.77, 790.13, 799.78, 801.2, 806.19]
    assert set(table.column("ticker").to_pylist()) == {"GOOG"}


def test_parquet_with_lowercase_snake_case_and_adj_close(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pq.write_table(
        pa.table(
            {
                "trade_date": pa.array([dt.date(2024, 1, 2), dt.date(2024, 1, 3)], pa.date32()),
                "open": [10.0, 11.0],
                "high": [12.0, 12.5],
                "low": [9.5, 10.5],
                "close": [11.0, 12.0],
                "volume": [1000.0, 2500.4],
                "adj_close": [10.5, 11.5],
                "symbol": ["ABC", "ABC"],
                "mic": ["XLON", "XLON"],
            }
        ),
        path,
    )
    p = FileProvider(path=path)
    table = p.fetch_bars([], exchange_mic="XNAS", **ALL)
    assert [
        (r["ticker"], r["exchange_mic"], r["trade_date"], r["close"], r["adj_close"], r["volume"])
        for r in table.to_pylist()
    ] == [
        ("ABC", "XLON", dt.date(2024, 1, 2), 11.0, 10.5, 1000),
        ("ABC", "XLON", dt.date(2024, 1, 3), 12.0, 11.5, 2500),
    ]
    assert p.list_tickers("XLON") == [
        {"exchange_mic": "XLON", "symbol": "ABC", "name": None, "currency_code": None}
    ]


def test_csv_with_yahoo_style_headers_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "yahoo.csv"
    path.write_text(
        "DATE,OPEN,HIGH,LOW,CLOSE,Adj Close,VOLUME\n"
        "2024-01-02T00:00:00,10,12,9.5,11,10.9,100\n"
        "2024-01-03T00:00:00,11,12.5,10.5,12,11.9,200\n"
    )
    table = FileProvider(path=path, ticker="XYZ", exchange_mic="XNYS").read_all()
    assert table.column("trade_date").to_pylist() == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    assert table.column("adj_close").to_pylist() == [10.9, 11.9]
    assert table.column("volume").to_pylist() == [100, 200]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Adj Close", "adj_close"),
        ("adjClose", "adj_close"),
        ("VOLUME", "volume"),
        (" Date ", "date"),
        ("trade-date", "trade_date"),
    ],
)
def test_column_names_are_normalised(name: str, expected: str) -> None:
    assert normalise_column(name) == expected


def test_bad_files_say_what_is_wrong(tmp_path: Path, samples: Path) -> None:
    with pytest.raises(NotFoundError) as missing:
        FileProvider(path=tmp_path / "nope.csv", ticker="X", exchange_mic="XNAS").read_all()
    assert str(missing.value) == f"no such file: {tmp_path / 'nope.csv'}"
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,Close\n2024-01-02,1,2\n")
    with pytest.raises(InvalidInputError) as columns:
        FileProvider(path=bad, ticker="X", exchange_mic="XNAS").read_all()
    assert columns.value.code == "schema"
    assert str(columns.value).startswith("bad.csv: missing column(s) high, low, volume;")
    with pytest.raises(InvalidInputError) as no_ticker:
        FileProvider(path=samples / "MSFT.csv", exchange_mic="XNAS").read_all()
    assert str(no_ticker.value) == "MSFT.csv has no ticker column: pass --ticker"
    dates = tmp_path / "dates.csv"
    dates.write_text("Date,Open,High,Low,Close,Volume\n02/01/2024,1,2,1,2,3\n")
    with pytest.raises(InvalidInputError) as bad_dates:
        FileProvider(path=dates, ticker="X", exchange_mic="XNAS").read_all()
    assert bad_dates.value.code == "bad-date"
