"""history that scales: outcome rollups, listing indexes (placeholder, filled next)

Revision ID: 0007_history_rollups
Revises: 0006_vendor_events
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_history_rollups"
down_revision: str | None = "0006_vendor_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""


def downgrade() -> None:
    """Revert this revision."""
