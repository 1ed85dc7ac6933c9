"""The lock files pin what pyproject.toml asks for: a stale lock fails here, before an install does (`make lock`)."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    """``{canonical name: version}`` of a lock file."""
    text = (REPO / name).read_text()
    return {canonicalize_name(n): v for n, v in PIN.findall(text)}


def pyproject() -> dict[str, list[str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {
        "runtime": data["project"]["dependencies"],
        "dev": data["project"]["optional-dependencies"]["dev"],
        "build": data["build-system"]["requires"],
    }


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("requirements.lock", ("runtime", "build")), ("requirements-dev.lock", ("runtime", "dev", "build"))],
)
def test_every_declared_dependency_is_pinned_at_a_version_it_allows(lock: str, groups: tuple[str, ...]) -> None:
    pinned, declared = pins(lock), pyproject()
    for group in groups:
        for spec in declared[group]:
            requirement = Requirement(spec)
            name = canonicalize_name(requirement.name)
            assert name in pinned, f"{spec} ({group}) is not in {lock}: run `make lock`"
            assert requirement.specifier.contains(pinned[name], prereleases=True), (
                f"{lock} pins {name}=={pinned[name]}, outside {spec}: run `make lock`"
            )


def test_the_dev_lock_pins_the_runtime_exactly_as_the_image_gets_it() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_pin_carries_hashes(lock: str) -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", (REPO / lock).read_text().split("\n", 2)[2])
    unhashed = [entry.split()[0] for entry in entries if "==" in entry and "--hash=sha256:" not in entry]
    assert unhashed == []
