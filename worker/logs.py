"""Logging: one JSON object per line on stderr, with the structured fields passed as ``extra``."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route every logger (applyq, Celery, kombu) through one handler; quiet chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; job ids are fine but the noise is not.
    for noisy in ("httpx", "httpcore", "celery.worker.strategy", "celery.app.trace", "kombu"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
