from __future__ import annotations

import pytest

from worker.routing.backoff import full_jitter, retry_delay


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.5, 1.0), (2, 0.5, 2.0), (3, 0.5, 4.0), (4, 0.999, 15.984), (10, 0.5, 30.0), (100, 0.5, 30.0)],
)
def test_full_jitter_is_rand_times_capped_exponential(attempt: int, rand: float, expected: float) -> None:
    assert full_jitter(attempt, base_s=2.0, max_s=60.0, rand=rand) == pytest.approx(expected)


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert full_jitter(5, base_s=1.0, max_s=60.0, rand=0.0) == 0.0
    assert full_jitter(5, base_s=1.0, max_s=60.0, rand=0.999999) < 16.0


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.99])
def test_retry_after_is_a_floor_never_undercut(rand: float) -> None:
    assert retry_delay(1, base_s=1.0, max_s=60.0, rand=rand, retry_after_s=30.0) >= 30.0


def test_retry_after_above_the_cap_is_still_honoured() -> None:
    assert retry_delay(3, base_s=1.0, max_s=10.0, rand=0.5, retry_after_s=3600.0) == 3600.0


def test_floor_applies_when_jitter_is_small() -> None:
    assert retry_delay(1, base_s=1.0, max_s=60.0, rand=0.0, floor_s=1.0) == 1.0


@pytest.mark.parametrize(("attempt", "rand"), [(0, 0.5), (1, 1.0), (1, -0.1)])
def test_bad_arguments_are_refused(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError):
        full_jitter(attempt, base_s=1.0, max_s=2.0, rand=rand)
