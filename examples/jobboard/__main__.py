"""``python -m examples.jobboard [--port 8900]``: the example job board, configured like applyq (APPLYQ_*)."""

from __future__ import annotations

import argparse
import os

import uvicorn

from examples.jobboard.app import JobBoard, create_app
from examples.jobboard.models import Base
from worker import Applyq, Settings, create_engine


def main() -> None:
    """Create the board's tables if needed and serve it until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.jobboard", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    settings = Settings()  # the same APPLYQ_* environment as the worker: database, broker, webhook secret
    engine = create_engine(settings.database_url)  # applyq's helper tunes SQLite; any SQLAlchemy engine works
    Base.metadata.create_all(engine)
    applyq = Applyq.from_settings(settings)
    integration_id = os.environ.get("JOBBOARD_INTEGRATION_ID", "greenhouse:jobboard-example")
    board = JobBoard(applyq, engine, settings.webhook_secret, integration_id)
    try:
        uvicorn.run(create_app(board), host=args.host, port=args.port, log_level="warning")
    finally:
        applyq.close()
        engine.dispose()


if __name__ == "__main__":
    main()
