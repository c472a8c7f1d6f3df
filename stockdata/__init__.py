"""stockdata: the shared kernel (errors, settings base, logging) and the CLI composition root.

`lake`, `catalog`, `loaders` and `query_api` import from here; this package imports none
of them except in `stockdata.cli`, the one place that wires the parts together.
"""

from stockdata.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    StockDataError,
    TransientError,
)

__all__ = [
    "ConfigurationError",
    "InvalidInputError",
    "NotFoundError",
    "PermanentError",
    "StockDataError",
    "TransientError",
]
__version__ = "0.1.0"
