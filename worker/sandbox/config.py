"""The sandbox's knobs, fixed when the app is created."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxConfig"]


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox providers authenticate, how slow they are and how they misbehave."""

    #: The only bearer token the Kombo endpoint accepts.
    kombo_api_key: str = "sandbox-kombo-key"
    #: Delay before answering every provider request.
    latency_ms: float = 0
    #: How long a ``hang`` or ``slowcreate`` attempt stalls before it answers.
    hang_s: float = 10.0
    #: ``Retry-After`` value, in seconds, sent with rate-limit answers.
    retry_after_s: int = 1
    #: Seed of the generated ids, so that runs are reproducible.
    seed: int = 0
    #: Refuse a second creation of the same application; ``False`` lets chaos tests count duplicates.
    dedupe: bool = True
