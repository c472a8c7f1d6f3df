"""Corporate actions from providers: the `ActionSource` interface and the rows it returns.

A provider gives actions one of two ways, and says which with `actions_on_bars`:

- on its bars (`split_factor`/`dividend` per bar: Marketstack's `/eod`, Tiingo's
  `splitFactor`/`divCash`, the synthetic generator). A bar job then records them as it
  writes the bars (lake.write_bars), with no extra call;
- from endpoints of their own (EODHD's `/splits` and `/div`). A bar job then fetches them
  too, after the bars, and writes them under the job's own application id.

Every provider also answers `fetch_actions` for `actions` jobs (`stockdata ingest actions`),
from its dedicated endpoints where it has them (Marketstack's `/splits` and `/dividends`)
or else from its bars over the range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from lake import ACTION_INPUT_SCHEMA, actions_from_bars
from loaders.providers._arrow import to_date, to_float
from stockdata.errors import CredentialError, PermanentError

#: Credential codes that mean "this plan has no such endpoint", not "this key is bad".
NOT_IN_PLAN_CODES = frozenset({"function_access_restricted", "forbidden"})


@runtime_checkable
class ActionSource(Protocol):
    """A provider that can list corporate actions (ACTION_INPUT_SCHEMA columns, unvalidated)."""

    name: str
    #: True when `fetch_bars` already carries every action on the bars.
    actions_on_bars: bool

    def fetch_actions(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table: ...


def action_rows(rows: Iterable[Mapping[str, Any]], *, source: str, exchange_mic: str) -> pa.Table:
    """Rows with ACTION_INPUT_SCHEMA keys as a table; dates and numbers parsed leniently
    (a value that is not one becomes null, for the lake's validation to reject)."""
    columns: dict[str, list[Any]] = {f.name: [] for f in ACTION_INPUT_SCHEMA}
    for row in rows:
        for name, values in columns.items():
            value = row.get(name)
            if name in ("ex_date", "declared_date"):
                value = to_date(value)
            elif name in ("ratio", "amount"):
                value = to_float(value)
            elif value is not None:
                value = str(value)
            values.append(value)
    n = len(columns["ticker"])
    columns["exchange_mic"] = [exchange_mic] * n
    columns["source"] = [source] * n
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], type=f.type) for f in ACTION_INPUT_SCHEMA],
        schema=ACTION_INPUT_SCHEMA,
    )


def split_ratio(text: Any) -> float | None:
    """`4.000000/1.000000` (EODHD) or `3:2` -> new shares per old share; None if not one."""
    if not isinstance(text, str):
        return to_float(text)
    for sep in ("/", ":"):
        if sep in text:
            new, _, old = text.partition(sep)
            a, b = to_float(new.strip()), to_float(old.strip())
            if a is None or b is None or b == 0:
                return None
            return a / b
    return to_float(text)


class ActionsOnBars:
    """`fetch_actions` for a provider whose bars carry its splits and dividends: the actions
    on the bars of the range (one fetch of the bars, no endpoint of its own)."""

    #: bar jobs record these actions as they write the bars: no extra call
    actions_on_bars = True

    def fetch_actions(
        self,
        symbols: Sequence[str],
        *,
        exchange_mic: str,
        date_from: dt.date,
        date_to: dt.date,
    ) -> pa.Table:
        bars = self.fetch_bars(  # type: ignore[attr-defined]
            list(symbols), exchange_mic=exchange_mic, date_from=date_from, date_to=date_to
        )
        table: pa.Table = actions_from_bars(bars)
        return table


def not_in_plan(exc: CredentialError) -> bool:
    return exc.code in NOT_IN_PLAN_CODES


def plan_refused(provider: str, exc: CredentialError) -> PermanentError:
    """An actions endpoint the key's plan does not include: the job fails with the reason
    (re-run it with `stockdata ingest retry` once the plan has it); the worker keeps going."""
    return PermanentError(
        f"{provider}: the API plan does not include corporate actions ({exc.message})",
        code="actions-not-in-plan",
        provider=provider,
    )
