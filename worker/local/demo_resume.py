"""The demo's parked submission that resumes itself: a vendor event, not an operator, sends it on.

The sandbox breaks one Kombo integration before the demo submits (every create for it answers as the fault
scenario does), so that integration's submission parks. Once it is parked, the sandbox fixes the integration
and sends Kombo's signed ``integration-state-changed`` (``ACTIVE``) to the demo's own ``applyq api``
(``POST /vendor-events/kombo``); the auto-resume rules requeue the submission and the worker delivers it. The
demo shows that chain in one line, read back from the database: the code it parked with, the event, the
audit row the event left (actor ``vendor:kombo``), the final status.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from worker.admin.queries import audit_events
from worker.db.models import Submission
from worker.states import Status

__all__ = ["EVENT_TYPE", "PARKS_AS", "VendorFix"]

#: Kombo's event for an integration whose state changed; the sandbox sends it as ``ACTIVE`` (docs/sandbox.md).
EVENT_TYPE = "integration-state-changed"
_ACTOR = "vendor:kombo"
#: What each sandbox fault an ``ACTIVE`` integration resolves parks a Kombo submission as (docs/sandbox.md).
PARKS_AS = {"permission": "INTEGRATION.PERMISSION_MISSING", "reauth": "INTEGRATION.AUTHENTICATION_INVALID"}


@dataclass
class VendorFix:
    """One Kombo integration the sandbox breaks with ``fault``, then fixes and announces once its submission parks."""

    sandbox_url: str
    integration_id: str
    #: a key of ``PARKS_AS``
    fault: str
    event_id: str | None = None
    #: what went wrong, if anything did (the demo then fails)
    problem: str | None = None

    @property
    def parks_as(self) -> str:
        """The outcome code the fault parks the submission with."""
        return PARKS_AS[self.fault]

    def break_integration(self) -> None:
        """Make every create for the integration answer as the fault does, until an event fixes it."""
        path = f"/_sandbox/integrations/kombo/{self.integration_id}/{self.fault}"
        httpx.post(self.sandbox_url + path, timeout=10).raise_for_status()

    def holds(self, row: Submission) -> bool:
        """Whether the demo must wait on: True right after the event went out (its requeue is read next poll)."""
        if self.event_id is not None or self.problem is not None or row.status != Status.PARKED.value:
            return False
        if row.outcome_code != self.parks_as:
            self.problem = f"parked as {row.outcome_code}, not {self.parks_as}: no event sent"
            return False
        self._announce()
        return self.problem is None

    def _announce(self) -> None:
        path = f"/_sandbox/events/kombo/{self.integration_id}/{EVENT_TYPE}"
        answer = httpx.post(self.sandbox_url + path, timeout=30)
        sent = answer.json() if answer.status_code == 200 else {}
        if sent.get("status") != 200:
            self.problem = f"the sandbox could not deliver {EVENT_TYPE} to applyq api: {answer.text[:300]}"
            return
        self.event_id = str(sent["sent"]["id"])

    def report(self, console: Console, sessions: sessionmaker[Session], row: Submission) -> bool:
        """Print the chain parked → event → outcome; True if the event alone took the submission to success."""
        with sessions() as session:
            audit = [(a.actor, a.action, a.note or "") for a in audit_events(session, row.id)]
        by_event = self.event_id is not None and any(
            actor == _ACTOR and self.event_id in note for actor, _, note in audit
        )
        operators = [actor for actor, _, _ in audit if actor != _ACTOR]
        if self.event_id is None and self.problem is None:
            self.problem = f"the submission never parked (it ended {row.status})"
        ok = self.problem is None and by_event and not operators and row.status == Status.SUCCEEDED.value
        colour = "green" if ok else "red"
        chain = f"parked: {self.parks_as} → vendor event {EVENT_TYPE} ({self.event_id or 'not sent'}) → {row.status}"
        how = f"requeued by {_ACTOR}" if by_event else "not requeued by the event"
        who = "no operator command" if not operators else f"operator commands by {', '.join(operators)}"
        console.print(f"[{colour}]{chain}[/{colour}]", highlight=False)
        console.print(f"  {how}, {who}: applyq show {row.id}", highlight=False)
        if self.problem is not None:
            console.print(f"[red]vendor event: {self.problem}[/red]", highlight=False)
        return ok
