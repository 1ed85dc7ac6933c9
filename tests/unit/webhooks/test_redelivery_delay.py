"""The wait before a webhook is sent again: full-jitter backoff, the receiver's Retry-After a floor up to a maximum."""

from __future__ import annotations

import pytest

from worker.config import Settings
from worker.webhooks.delivery import Sent, redelivery_delay

SETTINGS = Settings(backoff_base_s=1.0, backoff_max_s=60.0, webhook_retry_after_max_s=3600.0)


@pytest.mark.parametrize(
    ("attempt", "retry_after_s", "expected_s"),
    [
        (1, None, 0.5),  # rand 0.5 * base 1 s
        (1, 0.0, 0.5),
        (1, 7.0, 7.0),  # a floor above the backoff
        (10, 7.0, 30.0),  # the backoff above the floor: rand 0.5 * APPLYQ_BACKOFF_MAX_S 60 s
        (1, 120.0, 120.0),  # honoured beyond APPLYQ_BACKOFF_MAX_S: the receiver asked for it
        (1, 3600.0, 3600.0),
        (1, 86_400.0, 3600.0),  # bounded by APPLYQ_WEBHOOK_RETRY_AFTER_MAX_S
    ],
)
def test_the_receivers_retry_after_is_a_floor_bounded_by_the_documented_maximum(
    attempt: int, retry_after_s: float | None, expected_s: float
) -> None:
    sent = Sent(False, 503, retry_after_s, "HTTP 503")
    assert redelivery_delay(attempt, sent, SETTINGS, rand=0.5) == expected_s


def test_the_maximum_is_a_setting() -> None:
    tight = SETTINGS.model_copy(update={"webhook_retry_after_max_s": 30.0})
    assert redelivery_delay(1, Sent(False, 429, 120.0), tight, rand=0.5) == 30.0
    assert Settings.model_fields["webhook_retry_after_max_s"].default == 3600.0
