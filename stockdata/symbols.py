"""The one rule for ticker symbols, shared by the CLI, the loaders and the API."""

from __future__ import annotations

import re

from stockdata.errors import InvalidInputError

#: What a symbol may look like: a letter or digit, then up to 31 letters, digits, dots or
#: dashes (BRK.B, BF-B, 7203). The API's routes match this pattern, so anything loaded can
#: be asked for.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$"
_SYMBOL = re.compile(SYMBOL_PATTERN)


def check_symbol(value: str) -> str:
    """`value` as a stored symbol (upper case), or `InvalidInputError` saying the rule."""
    if not _SYMBOL.fullmatch(value):
        raise InvalidInputError(
            f"{value!r} is not a ticker symbol: use 1-32 letters, digits, '.' or '-', "
            "starting with a letter or digit",
            code="invalid-symbol",
        )
    return value.upper()


__all__ = ["SYMBOL_PATTERN", "check_symbol"]
