"""Checks of the corporate actions against the bars: `stockdata lake check-adjustments`.

Adjustment is only as good as the actions. These checks find what usually goes wrong:

- `provider-disagrees`: a provider sent its own adjusted close (`adj_close`) and ours
  (`eod_adjusted`, basis `all`) differs from it by more than the tolerance, measured against
  the series' latest bar (a provider may adjust forward: a constant ratio is agreement);
- `jump-without-split`: the as-traded close moved by a split's size from one bar to the next
  (at least x1.8 or at most /1.8) and no split or stock dividend is recorded on that day;
- `split-without-jump`: a split is recorded, but the close did not move by anything near
  its ratio (within a factor of 1.25);
- `dividend-exceeds-price`: a cash dividend at least the previous close (its factor would be
  zero or negative: it is ignored, factor 1);
- `dividend-without-price`: a cash dividend with no bar before its ex-date (factor 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from lake._reader import connect
from lake._settings import LakeSettings

#: How far a close may move in one bar before it looks like an unrecorded split.
JUMP_RATIO = 1.8
#: How close the move on a split day must come to the split's ratio.
SPLIT_SLACK = 1.25


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    ticker: str
    exchange_mic: str
    date: str
    detail: str


def _provider_sql(tolerance: float) -> str:
    """Ours against the provider's on the same series, relative to the series' latest bar:
    a provider that adjusts forward (from the first bar) rather than backward differs by a
    constant, which is not a disagreement about the actions."""
    ratio = (
        "SELECT e.ticker, e.exchange_mic, e.trade_date, a.close AS ours, e.adj_close AS theirs, "
        "a.close / e.adj_close AS r, last_value(a.close / e.adj_close) OVER (PARTITION BY "
        "e.ticker, e.exchange_mic ORDER BY e.trade_date ROWS BETWEEN UNBOUNDED PRECEDING AND "
        "UNBOUNDED FOLLOWING) AS r_last FROM eod e JOIN eod_adjusted a "
        "USING (ticker, exchange_mic, trade_date) WHERE e.adj_close > 0"
    )
    return (
        "SELECT 'provider-disagrees', ticker, exchange_mic, trade_date, "
        "'ours ' || round(ours, 6) || ' vs provider adj_close ' || round(theirs, 6) "
        "|| ' (' || round((r / r_last - 1) * 100, 3) || '% against the latest bar)' "
        f"FROM ({ratio}) WHERE abs(r / r_last - 1) > {float(tolerance)!r}"
    )


_STEPS = (
    "SELECT ticker, exchange_mic, trade_date, close, "
    "lag(close) OVER (PARTITION BY ticker, exchange_mic ORDER BY trade_date) AS prev "
    "FROM eod"
)
_SPLITS = (
    "SELECT ticker, exchange_mic, ex_date, product(ratio) AS ratio FROM corporate_actions "
    "WHERE kind IN ('split', 'stock_dividend') GROUP BY ALL"
)
_JUMPS = (
    "SELECT 'jump-without-split', s.ticker, s.exchange_mic, s.trade_date, "
    "'close ' || s.prev || ' -> ' || s.close || ' (x' || round(s.close / s.prev, 4) || ')' "
    f"FROM ({_STEPS}) s ANTI JOIN ({_SPLITS}) a "
    "ON a.ticker = s.ticker AND a.exchange_mic = s.exchange_mic AND a.ex_date = s.trade_date "
    f"WHERE s.prev > 0 AND s.close > 0 AND (s.close / s.prev >= {JUMP_RATIO} "
    f"OR s.prev / s.close >= {JUMP_RATIO})"
)
_NO_JUMP = (
    "SELECT 'split-without-jump', a.ticker, a.exchange_mic, a.ex_date, "
    "'ratio ' || a.ratio || ' but close ' || s.prev || ' -> ' || s.close "
    f"FROM ({_SPLITS}) a JOIN ({_STEPS}) s "
    "ON a.ticker = s.ticker AND a.exchange_mic = s.exchange_mic AND a.ex_date = s.trade_date "
    "WHERE s.prev > 0 AND s.close > 0 AND "
    f"greatest(s.close * a.ratio / s.prev, s.prev / (s.close * a.ratio)) > {SPLIT_SLACK}"
)
_DIVIDENDS = (
    "SELECT CASE WHEN prev_close IS NULL THEN 'dividend-without-price' "
    "ELSE 'dividend-exceeds-price' END, ticker, exchange_mic, ex_date, "
    "'dividend ' || amount || CASE WHEN prev_close IS NULL THEN ' with no bar before it' "
    "ELSE ' >= previous close ' || prev_close END "
    "FROM action_factors WHERE kind = 'dividend' AND (prev_close IS NULL OR amount >= prev_close)"
)


def check_adjustments(settings: LakeSettings, *, tolerance: float = 0.005) -> list[Finding]:
    """Every finding of the checks above, by ticker, exchange, date and check."""
    con = connect(settings)
    try:
        sql = " UNION ALL ".join(
            f"({q})" for q in (_provider_sql(tolerance), _JUMPS, _NO_JUMP, _DIVIDENDS)
        )
        rows = con.execute(f"SELECT * FROM ({sql}) ORDER BY 2, 3, 4, 1").fetchall()
    finally:
        con.close()
    return [Finding(str(c), str(t), str(m), str(d), str(x)) for c, t, m, d, x in rows]
