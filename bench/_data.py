"""The benchmark data set: N synthetic tickers x 20 years on XNYS, generated once and cached.

Cached files under bench/.data/ (gitignored) are named after the generator's source digest,
so a change to `lake/_synthetic.py` regenerates them instead of measuring stale bars.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import lake

DATA = Path(__file__).resolve().parent / ".data"
DATE_FROM, DATE_TO = dt.date(2005, 1, 1), dt.date(2024, 12, 31)
SEED = 7


@functools.cache
def cache_key(n: int) -> str:
    """`{n}-{digest of the generator's source}`: part of every derived cache file's name."""
    import lake._synthetic as generator

    digest = hashlib.sha256(Path(generator.__file__).read_bytes()).hexdigest()[:10]
    return f"{n}-{digest}"


def synthetic(n: int) -> pa.Table:
    """Bars of T00000.. for DATE_FROM..DATE_TO (seed 7), from the cache or generated now."""
    path = DATA / f"synthetic_{cache_key(n)}.parquet"
    if path.exists():
        return pq.read_table(path)
    t0 = time.perf_counter()
    bars = lake.synthetic_bars(
        [f"T{i:05d}" for i in range(n)], date_from=DATE_FROM, date_to=DATE_TO, seed=SEED
    )
    print(f"generated {bars.num_rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    DATA.mkdir(parents=True, exist_ok=True)
    pq.write_table(bars, path, compression="snappy")
    return bars
