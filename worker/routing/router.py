"""The error-code router: declarative tables from each provider's answer to one ``Rule``.

Lookup order, most specific first:
1. the provider's error code (Kombo ``error.code``, Celper ``error``), when there is one;
2. a transport failure (timeout, connection lost, never connected);
3. the HTTP status (only when there is no code; StackOne has none):
   a. an ATS quirk: what a status means for the ATS the integration id names (``greenhouse:…``);
   b. for a status a unified API relays, the ATS's own status (StackOne ``provider_errors[].status``);
   c. the status, then its class (2xx, 4xx, 5xx);
4. an unknown code is parked, never retried blindly and never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.providers.base import ProviderError
from worker.routing import celper, kombo, stackone
from worker.routing.rules import ProviderRoutes, Rule
from worker.states import Provider

__all__ = ["ROUTES", "route", "upstream_status"]

#: Every provider's table, in one place.
ROUTES: Mapping[Provider, ProviderRoutes] = {
    Provider.KOMBO: kombo.ROUTES,
    Provider.STACKONE: stackone.ROUTES,
    Provider.CELPER: celper.ROUTES,
}


def route(provider: Provider, error: ProviderError, ats: str | None = None) -> Rule:
    """The rule for one failed attempt; the most specific match wins.

    ``ats`` names the ATS behind a unified API (``Adapter.ats``: Kombo's integration id prefix, StackOne's
    account API), for ATS-specific quirks.
    """
    table = ROUTES[provider]
    if error.code is not None:
        return table.codes.get(error.code, table.unknown_code)
    if error.kind in table.transport:
        return table.transport[error.kind]
    status = error.http_status or 0
    upstream = upstream_status(error) if status in table.relayed else None
    for seen in (upstream, status):
        if ats is not None and seen is not None and (ats, seen) in table.quirks:
            return table.quirks[(ats, seen)]
    if upstream is not None and upstream in table.upstream:
        return table.upstream[upstream]
    fallback = 200 if 200 <= status < 300 else 500 if status >= 500 else 400
    return table.statuses.get(status, table.statuses[fallback])


def upstream_status(error: ProviderError) -> int | None:
    """The first ATS status in ``details["provider_errors"]`` (StackOne), if there is one."""
    entries = (error.details or {}).get("provider_errors")
    for entry in entries if isinstance(entries, list) else []:
        status = entry.get("status") if isinstance(entry, dict) else None
        if isinstance(status, int | float) and not isinstance(status, bool):
            return int(status)
    return None
