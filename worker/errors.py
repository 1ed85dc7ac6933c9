"""applyq's own exceptions. Provider failures are values (``ProviderError``), not exceptions.

* ApplyqError
  - InvalidSubmission: the input failed validation; nothing was stored
  - IdempotencyConflict: a key was reused with a different payload; nothing was stored
  - SubmissionNotFound: no submission has that id or idempotency key
  - InvalidInput: an operator's input (a duration, a time, a ``--set`` edit, a setting) is malformed
"""

from __future__ import annotations

__all__ = ["ApplyqError", "IdempotencyConflict", "InvalidInput", "InvalidSubmission", "SubmissionNotFound"]


class ApplyqError(Exception):
    """Base class of every applyq error."""


class InvalidSubmission(ApplyqError):
    """The submission failed validation; the message names each bad field."""


class IdempotencyConflict(ApplyqError):
    """The idempotency key already belongs to a submission with a different payload."""

    def __init__(self, idempotency_key: str, existing_id: str) -> None:
        super().__init__(
            f"idempotency_key {idempotency_key!r} was already used for submission {existing_id} "
            "with a different payload"
        )
        self.idempotency_key = idempotency_key
        self.existing_id = existing_id


class SubmissionNotFound(ApplyqError):
    """No submission has the given id or idempotency key."""


class InvalidInput(ApplyqError):
    """An operator's input (a duration, a time, a ``--set`` edit, a setting) is malformed."""
