from __future__ import annotations

import pytest

from worker.config import LimitSpec, parse_rate, parse_rate_limits
from worker.states import Provider
from worker.traffic.limits import limit_key, provider_key, resolve_spec


@pytest.mark.parametrize(
    ("text", "per_s"),
    [("20/s", 20.0), ("20/min", 1 / 3), ("1000/60s", 1000 / 60), ("3600/h", 1.0), ("5 / second", 5.0), ("2.5/s", 2.5)],
)
def test_rates_are_read_in_requests_per_second(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize("text", ["20", "fast", "0/s", "20/fortnight", "-1/s"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_the_json_setting_with_both_forms() -> None:
    specs = parse_rate_limits('{"kombo:*": "20/s", "celper:*": {"rate": "20/min", "concurrency": 2}}')
    assert specs["kombo:*"] == LimitSpec(20.0, None)
    assert specs["celper:*"] == LimitSpec(pytest.approx(1 / 3), 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [("[1]", "JSON object"), ('{"workday:x": "1/s"}', "workday:x"), ('{"kombo:*": {"rate": "1/s", "x": 1}}', "kombo"),
     ('{"kombo:*": {"concurrency": 0}}', "concurrency"), ("{", "JSON")],
)  # fmt: skip
def test_bad_settings_name_the_problem(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rate_limits(raw)


def test_an_exact_key_beats_the_wildcard_which_beats_the_vendor_default() -> None:
    configured = parse_rate_limits('{"kombo:greenhouse:1": "5/s", "kombo:*": "20/s"}')
    assert resolve_spec("kombo:greenhouse:1", configured).rate_per_s == 5
    assert resolve_spec("kombo:lever:2", configured).rate_per_s == 20
    assert resolve_spec("stackone:acc", configured).rate_per_s == pytest.approx(1000 / 60)
    assert resolve_spec("kombo:x", {}).adaptive


def test_celper_limits_are_per_api_key_and_never_show_it() -> None:
    key = limit_key(Provider.CELPER, None, provider_key(Provider.CELPER, "celp_secret"))
    assert key.startswith("celper:") and "secret" not in key
    assert limit_key(Provider.KOMBO, "greenhouse:1", provider_key(Provider.KOMBO, "k")) == "kombo:greenhouse:1"


def test_stackone_limits_are_per_api_key_across_its_accounts() -> None:
    # StackOne: "Each API key is limited to a maximum of 1000 requests per minute"
    name = provider_key(Provider.STACKONE, "so-key")
    one, other = limit_key(Provider.STACKONE, "acc-1", name), limit_key(Provider.STACKONE, "acc-2", name)
    assert one == other and one.startswith("stackone:key-") and "so-key" not in one
    assert resolve_spec(one, {}).rate_per_s == 1000 / 60


def test_the_setting_is_validated_when_read() -> None:
    from pydantic import ValidationError

    from worker.config import Settings

    with pytest.raises(ValidationError, match="rate_limits"):
        Settings(rate_limits='{"kombo:*": "lots"}')


def test_a_refused_key_is_a_misconfiguration_signal_and_a_rate_limit_is_not() -> None:
    from worker.providers.base import ErrorKind, ProviderError
    from worker.traffic.limiter import Signal
    from worker.traffic.signals import signal_for

    def kombo(code: str, status: int) -> ProviderError:
        return ProviderError(ErrorKind.API_ERROR, "m", http_status=status, code=code)

    assert signal_for(Provider.KOMBO, None, kombo("PLATFORM.AUTHENTICATION_INVALID", 401)) is Signal.MISCONFIGURED
    assert signal_for(Provider.KOMBO, None, kombo("PLATFORM.IP_NOT_WHITELISTED", 403)) is Signal.MISCONFIGURED
    assert signal_for(Provider.KOMBO, None, kombo("INTEGRATION.PERMISSION_MISSING", 403)) is Signal.OTHER
    assert signal_for(Provider.KOMBO, None, kombo("PLATFORM.RATE_LIMIT_EXCEEDED", 429)) is Signal.KEY_RATE_LIMITED
    assert signal_for(Provider.KOMBO, None, kombo("REMOTE.RATE_LIMIT_EXCEEDED", 429)) is Signal.RATE_LIMITED
