"""Catalog reads and writes on a real Postgres: idempotent upserts, jobs, API keys."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import catalog
from stockdata.errors import InvalidInputError, NotFoundError


def test_seed_loads_exchanges_and_samples_and_is_idempotent(db: Engine) -> None:
    with catalog.session_scope(db) as s:
        first = catalog.seed_reference(s)
    with catalog.session_scope(db) as s:
        second = catalog.seed_reference(s)
        xnas = catalog.get_exchange(s, "xnas")
        xlon = catalog.get_exchange(s, "XLON")
        n_exchanges = len(catalog.list_exchanges(s))
    assert first.exchanges_inserted == n_exchanges
    assert first.tickers_inserted == 2
    assert (second.exchanges_inserted, second.exchanges_updated) == (0, 0)
    assert (second.tickers_inserted, second.tickers_updated) == (0, 0)
    assert (xnas.timezone, xnas.calendar_code, xnas.currency_code) == (
        "America/New_York",
        "XNYS",
        "USD",
    )
    assert (xlon.name, xlon.timezone, xlon.city) == (
        "London Stock Exchange",
        "Europe/London",
        "London",
    )


def test_upsert_updates_only_what_changed(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as s:
        r = catalog.upsert_tickers(
            s, [{"exchange_mic": "XNAS", "symbol": "MSFT", "name": "Microsoft"}]
        )
        assert (r.inserted, r.updated) == (0, 1)
        r = catalog.upsert_tickers(
            s, [{"exchange_mic": "XNAS", "symbol": "MSFT", "name": "Microsoft"}]
        )
        assert (r.inserted, r.updated) == (0, 0)
        assert catalog.get_ticker(s, "msft").name == "Microsoft"


def test_upsert_ticker_on_unknown_exchange_is_refused(seeded: Engine) -> None:
    with (
        pytest.raises(NotFoundError, match=r"unknown exchange MIC\(s\) \['XXXX'\]"),
        catalog.session_scope(seeded) as s,
    ):
        catalog.upsert_tickers(s, [{"exchange_mic": "XXXX", "symbol": "A"}])


def test_search_tickers_by_prefix_name_and_exchange(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as s:
        found, total = catalog.search_tickers(s, query="ms")
        assert [(t.symbol, mic) for t, mic in found] == [("MSFT", "XNAS")] and total == 1
        found, total = catalog.search_tickers(s, query="alphabet")
        assert [t.symbol for t, _ in found] == ["GOOG"]
        found, total = catalog.search_tickers(s, exchange_mic="XNAS", limit=1, offset=1)
        assert [t.symbol for t, _ in found] == ["MSFT"] and total == 2
        found, total = catalog.search_tickers(s, query="%")
        assert total == 0


def test_record_ingested_range_only_widens(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as s:
        catalog.record_ingested_range(s, "XNAS", "MSFT", dt.date(2000, 1, 3), dt.date(2001, 1, 2))
        catalog.record_ingested_range(s, "XNAS", "MSFT", dt.date(2000, 6, 1), dt.date(2000, 7, 1))
        catalog.record_ingested_range(s, "XNAS", "MSFT", dt.date(1999, 1, 4), dt.date(2000, 7, 1))
    with catalog.session_scope(seeded) as s:
        t = catalog.get_ticker(s, "MSFT")
        assert (t.first_ingested, t.last_ingested) == (dt.date(1999, 1, 4), dt.date(2001, 1, 2))


def _job(s, **over):  # type: ignore[no-untyped-def]
    args = dict(
        kind="daily",
        provider="marketstack",
        exchange_mic="XNAS",
        date_from=dt.date(2024, 1, 2),
        date_to=dt.date(2024, 1, 2),
        tickers=["MSFT", "GOOG"],
    )
    args.update(over)
    return catalog.create_job(s, **args)


def test_create_job_twice_gives_the_same_job(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as s:
        job, created = _job(s)
    with catalog.session_scope(seeded) as s:
        again, created_again = _job(s, tickers=["GOOG", "MSFT"])
        other, created_other = _job(s, tickers=["MSFT"])
    assert created and not created_again and created_other
    assert again.id == job.id and other.id != job.id
    assert job.status is catalog.JobStatus.QUEUED and job.tickers == ["GOOG", "MSFT"]


def test_job_lifecycle_and_counts(seeded: Engine) -> None:
    with catalog.session_scope(seeded) as s:
        job, _ = _job(s)
        failed, _ = _job(s, tickers=["X"])
    with catalog.session_scope(seeded) as s:
        assert catalog.mark_job_running(s, job.id).attempts == 1
        catalog.mark_job_succeeded(
            s,
            job.id,
            rows_written=2,
            rows_rejected=1,
            lake_version=7,
            outputs=[
                {
                    "table_name": "eod_prices",
                    "table_uri": "/lake/eod_prices",
                    "version": 7,
                    "rows": 2,
                    "partitions": ["2024"],
                }
            ],
        )
        catalog.mark_job_finished_with_error(
            s,
            failed.id,
            status=catalog.JobStatus.FAILED,
            error_code="invalid_access_key",
            error="provider refused the key",
        )
    with catalog.session_scope(seeded) as s:
        done = catalog.get_job(s, job.id)
        assert (done.status, done.rows_written, done.rows_rejected, done.lake_version) == (
            catalog.JobStatus.SUCCEEDED,
            2,
            1,
            7,
        )
        assert [(o.table_name, o.version, o.partitions) for o in done.outputs] == [
            ("eod_prices", 7, ["2024"])
        ]
        assert catalog.get_job(s, failed.id).error_code == "invalid_access_key"
        assert catalog.job_counts(s) == {
            "queued": 0,
            "running": 0,
            "succeeded": 1,
            "failed": 1,
            "poisoned": 0,
        }


def test_job_with_inverted_range_is_refused(seeded: Engine) -> None:
    with pytest.raises(InvalidInputError, match="is after"), catalog.session_scope(seeded) as s:
        _job(s, date_from=dt.date(2024, 1, 3), date_to=dt.date(2024, 1, 2))


def test_api_keys_are_hashed_verified_and_revoked(db: Engine) -> None:
    with catalog.session_scope(db) as s:
        key, raw = catalog.create_api_key(s, name="bi", role=catalog.Role.ANALYST)
        key_id = key.id
    with db.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).one()
    assert raw not in stored.key_hash and stored.key_hash == catalog.hash_api_key(raw)
    assert raw.startswith(stored.prefix) and len(raw) > 40
    with catalog.session_scope(db) as s:
        found = catalog.verify_api_key(s, raw)
        assert found is not None and found.role is catalog.Role.ANALYST
        assert catalog.verify_api_key(s, raw + "x") is None
        catalog.revoke_api_key(s, key_id)
    with catalog.session_scope(db) as s:
        assert catalog.verify_api_key(s, raw) is None
