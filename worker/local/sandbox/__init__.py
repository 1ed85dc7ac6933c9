"""A local provider sandbox: real HTTP, each provider's wire format, behaviour scripted by the job id."""

from __future__ import annotations

from worker.local.sandbox.app import create_app, serve
from worker.local.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app", "serve"]
