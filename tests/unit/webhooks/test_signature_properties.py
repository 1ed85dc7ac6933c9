"""``verify_signature`` over arbitrary headers: a genuine signature verifies; anything else is False, never raises.

Property-based (hypothesis), derandomised so that every run checks the same examples.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from worker.webhooks.events import sign, verify_signature

SECRET = "whsec-property-test"
NOW = 1_700_000_000
BODY = b'{"id":"e1"}'
VALID_DIGEST = sign(SECRET, BODY, NOW).split("v1=")[1]

#: The same examples on every run, nothing written to the working tree.
deterministic = settings(derandomize=True, database=None, deadline=None, max_examples=300)

#: Any code point, lone surrogates included (a header decoded with ``surrogateescape`` holds them).
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)
digits = st.integers(min_value=0, max_value=6000).map(lambda n: "9" * n)
part_value = st.one_of(any_text, digits, st.integers().map(str), st.just(VALID_DIGEST), st.just(str(NOW)))
part = st.tuples(st.sampled_from(["t", "v1", "v0", "T", " t", "t ", ""]), st.sampled_from(["=", "", "=="]), part_value)
grammar_header = st.lists(part, max_size=6).map(lambda parts: ",".join(n + eq + v for n, eq, v in parts))


def holds_the_genuine_signature(header: str) -> bool:
    fields = [p.strip().partition("=") for p in header.split(",")]
    return ("t", "=", str(NOW)) in fields and ("v1", "=", VALID_DIGEST) in fields


@deterministic
@given(header=st.one_of(st.none(), any_text, st.binary(max_size=80)))
def test_an_arbitrary_header_is_refused_without_an_exception(header: str | bytes | None) -> None:
    assert verify_signature(SECRET, header, BODY, now=NOW) is False


@deterministic
@given(header=grammar_header)
@example(header="t=²,v1=" + VALID_DIGEST)
@example(header="t=" + "1" * 4300 + ",v1=" + VALID_DIGEST)
@example(header="t=" + "1" * 400 + ",v1=" + VALID_DIGEST)  # an int that no float holds
@example(header="t=\uff11\uff17\uff10\uff10,v1=" + VALID_DIGEST)  # fullwidth digits
@example(header="t=\u0661\u0667\u0660\u0660,v1=" + VALID_DIGEST)  # Arabic-Indic digits
def test_a_header_shaped_like_a_signature_verifies_only_with_the_genuine_t_and_v1(header: str) -> None:
    assert verify_signature(SECRET, header, BODY, now=NOW) is holds_the_genuine_signature(header)


@deterministic
@given(
    secret=st.one_of(st.text(min_size=1, max_size=40), st.binary(min_size=1, max_size=40)),
    body=st.binary(max_size=200),
    timestamp=st.integers(min_value=0, max_value=10**12 - 1),
    age=st.integers(min_value=-300, max_value=300),
)
def test_a_genuine_signature_verifies_and_any_change_to_it_does_not(
    secret: str | bytes, body: bytes, timestamp: int, age: int
) -> None:
    header = sign(secret, body, timestamp)
    now = timestamp + age
    assert verify_signature(secret, header, body, now=now)
    assert verify_signature(secret, header.encode(), body, now=now)  # as raw ASGI headers come
    assert not verify_signature(secret, header, body + b"x", now=now)
    assert not verify_signature(secret, header, body, now=now + 301 if age >= 0 else now - 301)
    digest = header.split("v1=")[1]
    flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    assert not verify_signature(secret, header.replace(digest, flipped), body, now=now)


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW}",  # no v1
        f"v1={VALID_DIGEST}",  # no t
        f"t={NOW},v1=",
        f"t=,v1={VALID_DIGEST}",
        f"t={NOW},v1={VALID_DIGEST.upper()}",  # not as sign() writes it
        f"t={NOW},v1={VALID_DIGEST[:-1]}",  # 63 hex digits
        f"t={NOW},v1={VALID_DIGEST[:-1]}g",  # not hex
        f"t={NOW},v1={VALID_DIGEST}é",
        f"t=+{NOW},v1={VALID_DIGEST}",
        f"t={NOW}.0,v1={VALID_DIGEST}",
        f"t=1_700_000_000,v1={VALID_DIGEST}",
        f"t={NOW}\x00,v1={VALID_DIGEST}",
        f"t={'1' * 13},v1={VALID_DIGEST}",
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    assert verify_signature(SECRET, header, BODY, now=NOW) is False


@pytest.mark.parametrize(("now", "tolerance_s"), [(math.nan, 300.0), (NOW, math.nan), (math.inf, 300.0)])
def test_a_clock_or_tolerance_that_is_not_a_number_refuses(now: float, tolerance_s: float) -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify_signature(SECRET, header, BODY, tolerance_s, now=now) is False


def test_non_ascii_bytes_are_refused() -> None:
    assert verify_signature(SECRET, f"t={NOW},v1={VALID_DIGEST}".encode() + b"\xff", BODY, now=NOW) is False
