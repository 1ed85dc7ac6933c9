"""Data hygiene on real PostgreSQL: purge by any spelling of an address (the CLI), keys per client scope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import submission_dict
from tests.e2e.conftest import database_env, fresh_database
from worker.db.engine import alembic_config, create_engine, create_session_factory
from worker.db.models import Submission
from worker.db.submissions import add_submissions
from worker.schemas import SubmissionIn

pytestmark = pytest.mark.e2e

ADDRESS = "JÖRG.Ü@Bücher.de"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def database() -> Iterator[tuple[str, sessionmaker[Session]]]:
    with fresh_database() as url:
        engine = create_engine(url, pool_size=2)
        yield url, create_session_factory(engine)
        engine.dispose()


def store(sessions: sessionmaker[Session], key: str, email: str, scope: str = "default", **extra: str) -> str:
    candidate = {"first_name": "Jörg", "last_name": "Müller", "email": email}
    item = SubmissionIn.model_validate(submission_dict(idempotency_key=key, candidate=candidate, **extra))
    with sessions() as session:
        [stored] = add_submissions(session, [item], NOW, scope=scope)
        session.commit()
        return stored.submission.id


def purge(url: str, email: str) -> dict[str, object]:
    env = {**os.environ, **database_env(url)}  # `applyq purge` through the suite's PgBouncer, like every CLI
    args = [sys.executable, "-m", "worker", "purge", "--email", email, "--dry-run", "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize(
    "spelling", [ADDRESS, "jörg.ü@bücher.de", "jörg.ü@xn--bcher-kva.de", "JÖRG.Ü@XN--BCHER-KVA.DE"]
)
def test_purge_finds_the_address_by_any_casing_or_its_punycode_form(
    database: tuple[str, sessionmaker[Session]], spelling: str
) -> None:
    url, sessions = database
    own = store(sessions, "k1", ADDRESS)
    quoting = store(sessions, "k2", "someone@example.com")
    store(sessions, "k3", "jorg.u@bucher.de")
    with sessions() as session:
        message = f'field "email" ("{ADDRESS}") is not a valid email address'  # PostgreSQL's lower(): Unicode
        session.execute(sa.update(Submission).where(Submission.id == quoting).values(outcome_message=message))
        session.commit()
    assert sorted(purge(url, spelling)["purged"]) == sorted([own, quoting])  # type: ignore[type-var]


def test_the_migration_computes_keys_of_rows_stored_before_it(database: tuple[str, sessionmaker[Session]]) -> None:
    url, sessions = database
    config = alembic_config(url)
    command.downgrade(config, "0004_attempt_kind")
    with sessions() as session:
        session.execute(
            sa.text(
                "INSERT INTO applyq_submission (id, idempotency_key, payload_hash, provider_idempotency_key, provider,"
                " job_id, payload, status, attempt_count, window_attempt_base) VALUES ('old', 'k', 'h', 'p', 'kombo',"
                " 'j', CAST(:payload AS JSONB), 'succeeded', 1, 0)"
            ),
            {"payload": json.dumps({"candidate": {"email": "jörg.ü@bücher.de"}})},
        )
        session.commit()
    command.upgrade(config, "head")
    assert purge(url, "JÖRG.Ü@xn--bcher-kva.de")["purged"] == ["old"]
    with sessions() as session:
        assert session.scalar(sa.select(Submission.client_scope).where(Submission.id == "old")) == "default"


def test_two_scopes_may_use_one_key_on_postgres(database: tuple[str, sessionmaker[Session]]) -> None:
    _, sessions = database
    a = store(sessions, "shared", ADDRESS, scope="ta", job_id="job-a")
    b = store(sessions, "shared", ADDRESS, scope="tb", job_id="job-b")
    assert a != b
    assert store(sessions, "shared", ADDRESS, scope="ta", job_id="job-a") == a  # ON CONFLICT per (scope, key)
