"""stockdata: the shared kernel (errors, settings base, logging) and the CLI composition root.

`lake`, `catalog`, `loaders` and `query_api` import from here; this package imports none
of them except in `stockdata.cli`, the one place that wires the parts together.
"""

from stockdata.errors import (
    AuthenticationError,
    ConfigurationError,
    FeatureDisabledError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    RateLimitedError,
    ResourceLimitError,
    StockDataError,
    TransientError,
)

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "FeatureDisabledError",
    "InvalidInputError",
    "NotFoundError",
    "PermanentError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ResourceLimitError",
    "StockDataError",
    "TransientError",
]
__version__ = "0.1.0"
