"""The sandbox's knobs, fixed when the app is created."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxConfig"]


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox providers authenticate, how slow they are and how they misbehave."""

    #: The only bearer token the Kombo endpoint accepts.
    kombo_api_key: str = "sandbox-kombo-key"
    #: The only API key the StackOne endpoint accepts (Basic auth user name, empty password).
    stackone_api_key: str = "sandbox-stackone-key"
    #: The only ``X-API-Key`` the Celper endpoint accepts (Celper's format: ``celp_`` + 32 hex digits).
    celper_api_key: str = "celp_5a4db0c0ffee5a4db0c0ffee5a4db0c0"
    #: The Celper budget reported in ``X-RateLimit-*`` (per 60 s; Celper's documented writes limit), not enforced.
    celper_rate_limit: int = 20
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
    #: Enforced requests per second per rate scope, as each vendor counts it (Kombo: the integration; StackOne:
    #: the API key across its accounts; Celper: the company), a token bucket holding one second's worth; beyond it,
    #: the provider's rate-limit answer with ``Retry-After``. ``None``: no limit.
    rate_limit_per_s: float | None = None
    #: Where the Kombo webhooks the sandbox is told to send go (``applyq api``'s ``/vendor-events/kombo``).
    kombo_events_url: str | None = None
    #: The Kombo Webhook Secret they are signed with (``X-Kombo-Signature``).
    kombo_webhook_secret: str = "sandbox-kombo-webhook-secret"
    #: Where the StackOne account events go (``applyq api``'s ``/vendor-events/stackone``).
    stackone_events_url: str | None = None
    #: The StackOne signing secret they are signed with (``x-stackone-signature``).
    stackone_webhook_secret: str = "sandbox-stackone-webhook-secret"
