from __future__ import annotations

import pytest

from stockdata.logs import scrub_processor, scrub_text, scrub_url


def test_scrub_url_hides_credentials_and_keeps_the_rest() -> None:
    url = "https://api.marketstack.com/v2/eod?access_key=abc123&symbols=MSFT&limit=1000"
    assert (
        scrub_url(url)
        == "https://api.marketstack.com/v2/eod?access_key=***&symbols=MSFT&limit=1000"
    )
    assert scrub_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert scrub_url("https://a.blob.core.windows.net/c?sv=1&sig=XYZ") == (
        "https://a.blob.core.windows.net/c?sv=1&sig=***"
    )


def test_scrub_text_finds_urls_and_pairs_in_messages() -> None:
    msg = "GET https://x/eod?api_token=SECRET failed; token=abc, password: hunter2"
    out = scrub_text(msg)
    assert "SECRET" not in out and "abc" not in out and "hunter2" not in out
    assert out == "GET https://x/eod?api_token=*** failed; token=***, password: ***"


def test_processor_redacts_secret_fields_and_secret_values() -> None:
    event = {"event": "fetch", "url": "http://h/p?access_key=K1", "api_key": "K2", "n": 3}
    assert scrub_processor(None, "info", event) == {
        "event": "fetch",
        "url": "http://h/p?access_key=***",
        "api_key": "***",
        "n": 3,
    }


@pytest.mark.parametrize(
    "text", ["/v1/eod/MSFT", "/v1/eod/{symbol}", "GET", "c0d0d85afb667be6", "10.0.0.7", ""]
)
def test_text_without_a_separator_is_returned_untouched(text: str) -> None:
    # neither pattern can match without "=" or ":", so the regular expressions are skipped
    assert scrub_text(text) is text


def test_pairs_with_any_separator_are_still_scrubbed() -> None:
    assert scrub_text('{"token": "abc"}') == '{"token": "***"}'
    assert scrub_text("sig=abc") == "sig=***"
    assert scrub_text("password:hunter2") == "password:***"
    assert scrub_text("see az://c/p?sig=abc") == "see az://c/p?sig=***"
