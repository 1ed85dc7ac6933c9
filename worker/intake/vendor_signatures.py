"""The vendors' webhook signatures, checked exactly as each vendor documents them.

* **Kombo** (docs.kombo.dev/webhooks, "Validate the data"; the header is declared on every entry of the
  ``webhooks`` section of Kombo's OpenAPI document): ``X-Kombo-Signature`` is "HMAC-SHA256 [of] the request
  body with your Kombo Webhook Secret", digested "with base64url encoding", which "does not include the
  optional trailing '=' padding". A padded value is therefore not Kombo's and is refused.
* **StackOne** (docs.stackone.com/guides/webhooks, read through a summary of that page: secondary-sourced,
  see docs/vendor-rules.md): ``x-stackone-signature`` is HMAC-SHA256 of the raw request body with the
  webhook's signing secret, base64url; during a rotation either of two secrets may sign. Whether the value
  is padded is not stated: both forms are accepted (the padding carries no bits).

Both sign the raw body only, never a timestamp: freshness is judged from the event's own time fields where it
has them (``worker/intake/vendor_events.py``), and replays are harmless because events are idempotent on
their id. The check runs on the raw bytes, before any JSON parsing, in constant time against every secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from worker.states import Provider

__all__ = ["SCHEMES", "Scheme", "signature", "verify"]


@dataclass(frozen=True, slots=True)
class Scheme:
    """Where a vendor puts its signature, and whether a padded base64url value is still its own."""

    header: str
    accepts_padding: bool


SCHEMES: Mapping[Provider, Scheme] = {
    Provider.KOMBO: Scheme("X-Kombo-Signature", accepts_padding=False),
    Provider.STACKONE: Scheme("x-stackone-signature", accepts_padding=True),
}


def signature(secret: str | bytes, body: bytes) -> str:
    """HMAC-SHA256 of ``body`` with ``secret``, base64url without padding (what Kombo sends)."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(provider: Provider, secrets: Sequence[SecretStr], header: str | None, body: bytes) -> bool:
    """True if ``header`` signs the raw ``body`` with one of ``secrets`` (none configured: always False)."""
    given = (header or "").strip()
    if SCHEMES[provider].accepts_padding:
        given = given.rstrip("=")
    keys = [s.get_secret_value() for s in secrets if s.get_secret_value()]
    if not given or not keys:
        return False
    # compare with every secret, so the time taken says nothing about which one matched
    return any([hmac.compare_digest(signature(key, body).encode(), given.encode()) for key in keys])
