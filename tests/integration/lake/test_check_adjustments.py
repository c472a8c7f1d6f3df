"""`lake check-adjustments`: ours against the provider's, and actions that look wrong."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

import lake

D = dt.date
DAYS = [D(2021, 3, d) for d in (1, 2, 3, 4, 5, 8, 9)]


def _bars(ticker: str, closes: list[float], **extra: list[float | None]) -> pa.Table:
    n = len(closes)
    cols: dict[str, object] = {
        "ticker": [ticker] * n,
        "exchange_mic": ["XNYS"] * n,
        "trade_date": pa.array(DAYS[:n], pa.date32()),
        "open": closes,
        "high": closes,
        "low": closes,
        "close": closes,
        "volume": pa.array([100] * n, pa.int64()),
    }
    cols.update(extra)
    return pa.table(cols)


def _action(
    ticker: str, day: dt.date, kind: str, *, ratio: float | None = None, amount: float | None = None
) -> dict[str, object]:
    return {
        "ticker": ticker,
        "exchange_mic": "XNYS",
        "ex_date": day,
        "kind": kind,
        "ratio": ratio,
        "amount": amount,
    }


def _cli(settings: lake.LakeSettings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STOCKDATA_HOME": str(home), "STOCKDATA_LAKE_URI": settings.root}
    return subprocess.run(
        [sys.executable, "-m", "stockdata", "lake", "check-adjustments", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_synthetic_provider_agrees_with_our_method(tmp_path: Path) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    bars = lake.synthetic_bars(
        [f"T{i:02d}" for i in range(12)], date_from=D(2012, 1, 1), date_to=D(2016, 12, 31)
    )
    lake.write_bars(settings, bars, job_id="syn", today=D(2017, 1, 1))
    kinds = lake.read_actions(settings).column("kind").to_pylist()
    assert kinds.count("split") > 0 and kinds.count("dividend") > 0
    assert lake.check_adjustments(settings) == []
    done = _cli(settings, tmp_path / "home")
    assert (done.returncode, done.stdout.strip()) == (0, "0 finding(s)")


def test_each_check_finds_its_case(tmp_path: Path) -> None:
    settings = lake.LakeSettings(lake_uri=str(tmp_path / "lake"))
    # JUMP halves on 03-03 with no split on record
    lake.write_bars(settings, _bars("JUMP", [100, 101, 50.5, 51, 50]), job_id="jump")
    # FLAT has a 2:1 split recorded on 03-03 but the close barely moves
    lake.write_bars(settings, _bars("FLAT", [100, 101, 102, 101]), job_id="flat")
    # BIGDIV pays more than its price; EARLY pays before its first bar
    lake.write_bars(settings, _bars("BIGDIV", [10, 10, 10]), job_id="bigdiv")
    lake.write_bars(settings, _bars("EARLY", [10, 10]), job_id="early")
    # PROV: the provider's adj_close knows no 2:1 split on 03-03 that we have on record
    lake.write_bars(
        settings,
        _bars("PROV", [100, 100, 50, 50], adj_close=[100.0, 100.0, 50.0, 50.0]),
        job_id="prov",
    )
    # OK: a real 2:1 split, recorded, and a provider adj_close that agrees
    lake.write_bars(
        settings,
        _bars("OK", [100, 102, 51, 52], adj_close=[50.0, 51.0, 51.0, 52.0]),
        job_id="ok",
    )
    actions = pa.Table.from_pylist(
        [
            _action("FLAT", D(2021, 3, 3), "split", ratio=2.0),
            _action("BIGDIV", D(2021, 3, 2), "dividend", amount=12.0),
            _action("EARLY", D(2021, 2, 1), "dividend", amount=0.5),
            _action("PROV", D(2021, 3, 3), "split", ratio=2.0),
            _action("OK", D(2021, 3, 3), "split", ratio=2.0),
        ]
    )
    assert lake.write_actions(settings, actions, job_id="acts", today=D(2021, 3, 10)) == (5, 0)
    found = [(f.check, f.ticker, f.date) for f in lake.check_adjustments(settings)]
    assert found == [
        ("dividend-exceeds-price", "BIGDIV", "2021-03-02"),
        ("dividend-without-price", "EARLY", "2021-02-01"),
        ("split-without-jump", "FLAT", "2021-03-03"),
        ("jump-without-split", "JUMP", "2021-03-03"),
        ("provider-disagrees", "PROV", "2021-03-01"),
        ("provider-disagrees", "PROV", "2021-03-02"),
    ]
    done = _cli(settings, tmp_path / "home", "--json")
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(x["check"], x["ticker"], x["date"]) for x in lines] == found
    assert lines[0]["detail"] == "dividend 12.0 >= previous close 10.0"
    # a loose tolerance still reports the 100% disagreement; a wrong one is refused
    assert _cli(settings, tmp_path / "home", "--tolerance", "0.5").returncode == 1
    bad = _cli(settings, tmp_path / "home", "--tolerance", "-1")
    assert bad.returncode == 2 and "tolerance" in bad.stderr.lower()
