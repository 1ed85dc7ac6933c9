"""applyq: deliver job applications to ATS providers, reliably.

What a job board imports. Everything else is internal and may move between releases::

    from worker import Applyq, Settings, SubmissionIn, verify_signature
"""

from __future__ import annotations

from worker.config import Settings
from worker.db.engine import create_engine, migrate
from worker.db.models import UTCDateTime
from worker.errors import ApplyqError, IdempotencyConflict, InvalidInput, InvalidSubmission, SubmissionNotFound
from worker.intake.library import Applyq, Enqueued, SubmissionOut
from worker.schemas import SubmissionIn
from worker.states import Provider, Status
from worker.webhooks.events import SIGNATURE_HEADER, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "Applyq",
    "ApplyqError",
    "Enqueued",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidSubmission",
    "Provider",
    "Settings",
    "Status",
    "SubmissionIn",
    "SubmissionNotFound",
    "SubmissionOut",
    "UTCDateTime",
    "create_engine",
    "migrate",
    "verify_signature",
]
