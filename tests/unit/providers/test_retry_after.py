"""Retry-After as seconds or as an HTTP-date, counted on the sender's clock."""

from __future__ import annotations

import httpx
import pytest

from worker.providers.base import retry_after_of


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        # the date to wait for is on the provider's clock, and so is its Date: this host's clock never enters
        ({"Retry-After": "Sun, 22 Nov 2026 12:00:30 GMT", "Date": "Sun, 22 Nov 2026 12:00:00 GMT"}, 30.0),
        ({"Retry-After": "Sun, 22 Nov 2026 11:59:00 GMT", "Date": "Sun, 22 Nov 2026 12:00:00 GMT"}, 0.0),
        ({"Retry-After": "soon", "Date": "Sun, 22 Nov 2026 12:00:00 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_counts_from_the_responses_own_date(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_of(httpx.Response(429, headers=headers)) == expected
