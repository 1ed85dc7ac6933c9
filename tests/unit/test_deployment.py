"""The deployment files: Procfile (honcho), docker-compose.yml, .env.example; commands they run exist."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO
from worker.cli.app import app
from worker.config import Settings

APPLYQ_SERVICES = {"migrate", "worker", "dispatcher", "flower", "metrics", "sandbox"}


def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line and not line.startswith("#"))


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def assert_is_an_applyq_command(args: list[str]) -> None:
    """The command line parses: every subcommand and option exists (checked with --help)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"applyq {shlex.join(args)}: {result.output}"


def test_honcho_accepts_the_procfile() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "honcho", "-f", str(REPO / "Procfile"), "-d", str(REPO), "check"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Valid procfile detected (worker, dispatcher, flower, metrics)" in result.stderr


def test_the_procfile_runs_worker_dispatcher_flower_and_metrics() -> None:
    processes = procfile()
    assert set(processes) == {"worker", "dispatcher", "flower", "metrics"}
    for command in processes.values():
        program, *args = shlex.split(command)
        assert program == "applyq"
        assert_is_an_applyq_command(args)
    assert "--no-dispatcher" in processes["worker"]  # the dispatcher is a process of its own


def test_compose_has_every_service_with_healthchecks_and_persistence() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis"} | APPLYQ_SERVICES
    assert [name for name, s in services.items() if "healthcheck" not in s] == ["migrate"]  # one-shot
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    for name in APPLYQ_SERVICES:
        assert_is_an_applyq_command(services[name]["command"])
    for name in ("worker", "dispatcher", "flower", "metrics"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert services["sandbox"]["profiles"] == ["sandbox"]


def test_compose_takes_secrets_from_the_env_file_only() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert f"${{{secret}:?" in text
    assert all(
        s["env_file"] == "${APPLYQ_ENV_FILE:-.env}" for n, s in compose()["services"].items() if n in APPLYQ_SERVICES
    )
    assert "change-me" not in text and "sandbox-kombo-key" not in text


def test_the_example_env_file_names_only_real_settings() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    pairs = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    fields = {f"APPLYQ_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in pairs if k.startswith("APPLYQ_")} <= fields
    assert Settings(**{k.removeprefix("APPLYQ_").lower(): v for k, v in pairs.items() if k.startswith("APPLYQ_")})


def compose_command() -> list[str] | None:
    """``docker compose`` (v2 plugin), else ``docker-compose``; None when neither is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine (a file check, not a service: never required)")
    env = {**os.environ, "APPLYQ_ENV_FILE": ".env.example"}
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        env.pop(name, None)
    result = subprocess.run(
        [*command, "--env-file", ".env.example", "--profile", "sandbox", "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
