"""The serving form: an immutable, memory-mappable copy of one pinned `eod_prices` version.

The lake changes once a day and is read all day. `publish` writes, once per version, the
bars sorted by (ticker, exchange_mic, trade_date) as one NumPy `.npy` file per column, plus a
date-major permutation for cross-sections, into `<serving root>/v<version>/`. API workers
`np.load(..., mmap_mode="r")` the files: the page cache holds one copy per machine whatever
the number of workers, and start-up costs a few `mmap` calls (docs/adr/0007-serving-form.md).

Layout (rows = bars in (ticker, exchange_mic, trade_date) order):

- `days.npy` int32 day numbers since 1970-01-01; `open/high/low/close.npy` float64;
  `volume.npy` int64; `currency.npy`, `source.npy` int16 dictionary codes (-1: null);
- `series.json` [[ticker, mic], ...] and `series_ends.npy` int64: rows of series i are
  `ends[i-1]:ends[i]` (no ticker column);
- the nullable floats (adjusted prices and volume, split factor, dividend) dense
  (`<name>.npy`, NaN = null) when most rows have one, else sparse (`<name>.pos.npy` row
  positions and `<name>.val.npy` values), or absent when every row is null;
- `by_date.npy` int32 rows ordered by (date, series), `dates.npy` int32 the distinct days,
  `date_starts.npy` int64 where each day's rows start in `by_date`;
- `manifest.json`, written last, names the lake version, the row count and each column's form.

A build writes into `.tmp-v<version>-<pid>` and renames it into place: a reader sees a whole
form or none, and a build killed midway leaves only a temp directory, which the next build
(holding `.lock`) removes. One build per serving root at a time (an `flock`), so the
workers of a pod build at most one copy.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake._settings import LakeSettings
from stockdata.errors import InvalidInputError, NotFoundError

#: Bumped when the layout changes: a reader ignores a form of another format.
SERVING_FORMAT = 1
MANIFEST = "manifest.json"
PRICE_COLUMNS = ("open", "high", "low", "close")
#: Nullable float columns, stored dense, sparse or not at all (see the module docstring).
OPTIONAL_COLUMNS = (
    "adj_open",
    "adj_high",
    "adj_low",
    "adj_close",
    "adj_volume",
    "split_factor",
    "dividend",
)
TEXT_COLUMNS = ("currency", "source")
_BATCH_ROWS = 1 << 20


@dataclass(frozen=True, slots=True)
class PublishMetrics:
    """What `publish` did: the version, where its form is, and what building it cost."""

    version: int
    path: Path
    rows: int
    series: int
    bytes: int
    seconds: float
    built: bool  # False: a form of this version was already published

    @property
    def bytes_per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0


def serving_path(root: Path, version: int) -> Path:
    return root / f"v{int(version)}"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a published form at `path`, or None (absent, partial, other format)."""
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == SERVING_FORMAT else None


def published_versions(root: Path) -> list[int]:
    """Versions with a complete form under `root`, ascending."""
    out = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if name.startswith("v") and name[1:].isdigit() and read_manifest(entry) is not None:
            out.append(int(name[1:]))
    return sorted(out)


@contextmanager
def _build_lock(root: Path, *, wait: bool) -> Iterator[bool]:
    """The root's build lock (an flock, released by the kernel if the holder dies)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def publish(
    settings: LakeSettings, *, version: int | None = None, wait: bool = True
) -> PublishMetrics | None:
    """Build the serving form of `version` (default: the latest) unless it exists.

    None when `wait` is False and another process holds the build lock (it is building)."""
    from lake._reader import connect
    from lake._schema import EOD_TABLE
    from lake._write import open_table

    table = open_table(settings, EOD_TABLE)
    if table is None:
        raise NotFoundError(
            f"no eod_prices table at {settings.table_uri(EOD_TABLE)}: load data first"
        )
    latest = int(table.version())
    version = latest if version is None else int(version)
    if not 0 <= version <= latest:
        raise InvalidInputError(
            f"eod_prices has no version {version}: the latest is {latest}",
            code="unknown-version",
        )
    root = settings.serving_root
    final = serving_path(root, version)
    with _build_lock(root, wait=wait) as held:
        if not held:
            return None
        manifest = read_manifest(final)
        if manifest is not None:
            return _metrics(final, manifest, built=False)
        for stale in root.glob(".tmp-*"):  # left by a build that died; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # a directory without a manifest: not a form
            shutil.rmtree(final)
        tmp = root / f".tmp-v{version}-{os.getpid()}"
        tmp.mkdir()
        t0 = time.perf_counter()
        con = connect(settings, version=version)
        try:
            manifest = _build(con, tmp, version=version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            con.close()
        manifest["seconds"] = round(time.perf_counter() - t0, 3)
        _write_json(tmp / MANIFEST, manifest)
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(root)
        _prune(root, keep=settings.lake_serving_keep)
        return _metrics(final, manifest, built=True)


def _metrics(path: Path, manifest: dict[str, Any], *, built: bool) -> PublishMetrics:
    return PublishMetrics(
        version=int(manifest["version"]),
        path=path,
        rows=int(manifest["rows"]),
        series=int(manifest["series"]),
        bytes=int(manifest["bytes"]),
        seconds=float(manifest.get("seconds", 0.0)),
        built=built,
    )


def _prune(root: Path, *, keep: int) -> None:
    """Remove all but the newest `keep` forms. A worker still mapping one keeps its pages:
    unlinking a mapped file frees it only when the last mapping goes."""
    for version in published_versions(root)[:-keep]:
        shutil.rmtree(serving_path(root, version), ignore_errors=True)


def _write_json(path: Path, value: Any) -> None:
    with path.open("w") as fh:
        json.dump(value, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _open(path: Path, dtype: Any, rows: int) -> np.memmap:
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows,))


def _build(con: Any, out: Path, *, version: int) -> dict[str, Any]:
    """Write every file of the form into `out` from a DuckDB connection pinned at `version`."""
    series_rows = con.execute(
        "SELECT ticker, exchange_mic, count(*) FROM eod GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    rows = int(sum(int(n) for _, _, n in series_rows))
    counts = con.execute(
        "SELECT " + ", ".join(f"count({c})" for c in OPTIONAL_COLUMNS) + " FROM eod"
    ).fetchone()
    present = dict(zip(OPTIONAL_COLUMNS, (int(n) for n in (counts or ())), strict=True))
    forms = {name: "absent" if n == 0 else "dense" for name, n in present.items()}
    dictionaries: dict[str, list[str]] = {}
    for name in TEXT_COLUMNS:
        values = con.execute(
            f"SELECT DISTINCT {name} FROM eod WHERE {name} IS NOT NULL ORDER BY 1"
        ).fetchall()
        dictionaries[name] = [str(v) for (v,) in values]
    pos_dtype = np.int32 if rows < 2**31 else np.int64

    days = _open(out / "days.npy", np.int32, rows)
    prices = {name: _open(out / f"{name}.npy", np.float64, rows) for name in PRICE_COLUMNS}
    volume = _open(out / "volume.npy", np.int64, rows)
    codes = {name: _open(out / f"{name}.npy", np.int16, rows) for name in TEXT_COLUMNS}
    dense = {
        name: _open(out / f"{name}.npy", np.float64, rows)
        for name, form in forms.items()
        if form == "dense"
    }
    value_sets = {name: pa.array(dictionaries[name], pa.string()) for name in TEXT_COLUMNS}
    wanted = [
        "trade_date",
        *PRICE_COLUMNS,
        "volume",
        *(c for c in OPTIONAL_COLUMNS if forms[c] != "absent"),
        *TEXT_COLUMNS,
    ]
    reader = con.execute(
        f"SELECT {', '.join(wanted)} FROM eod ORDER BY ticker, exchange_mic, trade_date"
    ).to_arrow_reader(_BATCH_ROWS)
    at = 0
    for batch in reader:
        n = batch.num_rows
        sl = slice(at, at + n)
        days[sl] = batch.column("trade_date").cast(pa.int32()).to_numpy(zero_copy_only=False)
        for name in PRICE_COLUMNS:
            prices[name][sl] = batch.column(name).to_numpy(zero_copy_only=False)
        volume[sl] = batch.column("volume").to_numpy(zero_copy_only=False)
        for name in TEXT_COLUMNS:
            found = pc.index_in(batch.column(name), value_set=value_sets[name])
            codes[name][sl] = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
        for name in dense:
            col = batch.column(name).cast(pa.float64())
            dense[name][sl] = pc.fill_null(col, float("nan")).to_numpy(zero_copy_only=False)
        at += n
    if at != rows:
        raise RuntimeError(f"lake version {version} changed while building: {at} != {rows} rows")
    for arr in (days, volume, *prices.values(), *codes.values(), *dense.values()):
        arr.flush()
    columns = _encode_optional(out, rows, prices, volume, dense, pos_dtype)
    del dense
    # Rows of one day in series order: a stable sort of the day numbers keeps the
    # (ticker, exchange) order of the rows within each day.
    order = np.argsort(np.asarray(days), kind="stable").astype(pos_dtype)
    _save(out / "by_date.npy", order)
    sorted_days = np.asarray(days)[order]
    unique, starts = np.unique(sorted_days, return_index=True)
    _save(out / "dates.npy", unique.astype(np.int32))
    _save(out / "date_starts.npy", np.append(starts, rows).astype(np.int64))
    ends = np.cumsum([int(n) for _, _, n in series_rows], dtype=np.int64)
    _save(out / "series_ends.npy", ends)
    _write_json(out / "series.json", [[str(t), str(m)] for t, m, _ in series_rows])
    size = sum(p.stat().st_size for p in out.iterdir())
    return {
        "format": SERVING_FORMAT,
        "version": version,
        "rows": rows,
        "series": len(series_rows),
        "columns": columns,
        "dictionaries": dictionaries,
        "bytes": size,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _runs(
    ratio: np.ndarray, bases: list[np.ndarray], targets: list[np.ndarray], *, op: str
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of a piecewise-constant factor (`ratio` changes only at corporate actions) and
    each run's factor: of three candidate rows, the one that reproduces most values exactly."""
    rows = ratio.size
    prev = ratio[:-1]
    same = np.abs(ratio[1:] - prev) <= 1e-9 * np.abs(prev)
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    ends = np.append(starts[1:], rows)
    best = np.full(starts.size, -1, dtype=np.int64)
    best_misses = np.full(starts.size, np.iinfo(np.int64).max)
    run_of_row = np.repeat(np.arange(starts.size), ends - starts)
    for k in range(3):
        at = np.minimum(starts + k, ends - 1)
        factor = ratio[at][run_of_row]
        misses = np.zeros(rows, dtype=np.int64)
        for base, target in zip(bases, targets, strict=True):
            decoded = base * factor if op == "mul" else base / factor
            misses += decoded != target
        per_run = np.add.reduceat(misses, starts)
        better = per_run < best_misses
        best[better], best_misses[better] = at[better], per_run[better]
    return starts, ratio[best]


def _encode_optional(
    out: Path,
    rows: int,
    prices: Mapping[str, np.ndarray],
    volume: np.ndarray,
    dense: dict[str, np.memmap],
    pos_dtype: Any,
) -> dict[str, dict[str, Any]]:
    """Re-encode the dense nullable columns compactly, exactly: as a constant, or as raw x a
    per-run factor (adjusted prices and volume), with the rows it misses stored as
    exceptions; dense only when that is smaller. Absent columns are all null."""
    columns: dict[str, dict[str, Any]] = {}
    runs: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    if rows and "adj_close" in dense:
        close = np.asarray(prices["close"])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.asarray(dense["adj_close"]) / close
        names = [p for p in PRICE_COLUMNS if f"adj_{p}" in dense]
        starts, factors = _runs(
            ratio,
            [np.asarray(prices[p]) for p in names],
            [np.asarray(dense[f"adj_{p}"]) for p in names],
            op="mul",
        )
        runs["price"] = (starts, factors, "mul")
    if rows and "adj_volume" in dense:
        vol = np.asarray(volume).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = vol / np.asarray(dense["adj_volume"])
        starts, factors = _runs(ratio, [vol], [np.asarray(dense["adj_volume"])], op="div")
        runs["volume"] = (starts, factors, "div")
    for key, (starts, factors, _) in runs.items():
        _save(out / f"runs_{key}.pos.npy", starts.astype(pos_dtype))
        _save(out / f"runs_{key}.val.npy", factors.astype(np.float64))
    for name in OPTIONAL_COLUMNS:
        if name not in dense:
            columns[name] = {"form": "constant", "value": None}
            _save(out / f"{name}.pos.npy", np.empty(0, pos_dtype))
            _save(out / f"{name}.val.npy", np.empty(0, np.float64))
            continue
        actual = np.asarray(dense[name])
        best: tuple[int, dict[str, Any], np.ndarray | float] | None = None
        for value in (float("nan"), 0.0, 1.0, float(actual[0])):
            misses = _misses(value, actual)
            if best is None or misses < best[0]:
                best = (misses, {"form": "constant", "value": _json_float(value)}, value)
        key = {"adj_volume": "volume"}.get(name, "price" if name.startswith("adj_") else "")
        if key in runs:
            starts, factors, op = runs[key]
            base_name = name.removeprefix("adj_")
            base = (
                np.asarray(prices[base_name])
                if op == "mul"
                else np.asarray(volume).astype(np.float64)
            )
            factor = _expand(starts, factors, rows)
            with np.errstate(divide="ignore", invalid="ignore"):
                decoded = base * factor if op == "mul" else base / factor
            del base, factor
            misses = _misses(decoded, actual)
            if best is None or misses < best[0]:
                best = (
                    misses,
                    {"form": "scaled", "base": base_name, "runs": key, "op": op},
                    decoded,
                )
            del decoded
        assert best is not None
        misses, spec, decoded = best
        if misses * 12 >= rows * 8:
            columns[name] = {"form": "dense"}
            continue
        wrong = np.flatnonzero(~_equal(decoded, actual))
        _save(out / f"{name}.pos.npy", wrong.astype(pos_dtype))
        _save(out / f"{name}.val.npy", actual[wrong].astype(np.float64))
        spec["exceptions"] = int(wrong.size)
        columns[name] = spec
        del actual
        dense.pop(name)
        (out / f"{name}.npy").unlink()
    return columns


def _expand(starts: np.ndarray, values: np.ndarray, rows: int) -> np.ndarray:
    ends = np.append(starts[1:], rows)
    return np.repeat(values, ends - starts)


def _equal(a: np.ndarray | float, b: np.ndarray) -> np.ndarray:
    eq: np.ndarray = (a == b) | (np.isnan(a) & np.isnan(b))
    return eq


def _misses(a: np.ndarray | float, b: np.ndarray) -> int:
    return int(b.size - np.count_nonzero(_equal(a, b)))


def _json_float(value: float) -> float | None:
    return None if value != value else value
