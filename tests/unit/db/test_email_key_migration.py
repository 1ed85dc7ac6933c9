"""Migration 0005 computes the email key of stored submissions and puts their keys in the default scope."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from worker.db.engine import alembic_config

COLUMNS = (
    "id, idempotency_key, payload_hash, provider_idempotency_key, provider, job_id, payload, status, "
    "attempt_count, window_attempt_base"
)


def test_existing_rows_get_their_email_key_and_the_default_scope(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0004_attempt_kind")
    rows = [
        ("a", {"candidate": {"email": "JÖRG.Ü@bücher.de"}}),
        ("b", {"candidate": None}),  # purged
        *[(f"c{n:04}", {"candidate": {"email": f"Person{n}@Example.COM"}}) for n in range(600)],  # > one batch
    ]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        insert = sa.text(f"INSERT INTO applyq_submission ({COLUMNS}) VALUES (:id, :id, 'h', 'p', 'kombo', 'j', "
                         ":payload, 'succeeded', 1, 0)")  # fmt: skip
        connection.execute(insert, [{"id": i, "payload": json.dumps(p)} for i, p in rows])
    command.upgrade(config, "0005_email_key_scope")
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT id, email_key FROM applyq_submission")).all())
        scopes = set(connection.scalars(sa.text("SELECT DISTINCT client_scope FROM applyq_submission")))
    engine.dispose()
    assert (stored["a"], stored["b"], stored["c0599"]) == ("jörg.ü@xn--bcher-kva.de", None, "person599@example.com")
    assert scopes == {"default"}
