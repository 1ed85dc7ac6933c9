"""The release artifact: the wheel, installed in a clean virtualenv outside the checkout, migrates and runs the demo.

Built as the Dockerfile builds it (``pyproject.toml``, ``README.md`` and ``worker/`` only, ``--no-deps`` and the
locked setuptools), into a virtualenv with the runtime lock's dependencies (``uv``, from the dev lock, installs
them from its cache in seconds), and run from an empty directory with none of the test environment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

#: What the Dockerfile copies: everything a wheel is built from.
SOURCES = ("pyproject.toml", "README.md", "worker")


def run(args: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 300) -> str:
    """Run a command to completion (its whole process group is killed on a timeout); its output, or fail."""
    proc = subprocess.Popen(
        [str(a) for a in args], cwd=cwd, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{args[0]} {args[1]} still running after {timeout_s:g} s:\n{output}")
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{output}"
    return output


def package_files() -> set[str]:
    """Every file of the ``worker`` package in the checkout, as a wheel names it."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "worker").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    run([*pip_wheel, "--wheel-dir", dist, source], cwd=source)
    [built] = dist.glob("applyq-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the checkout with the locked runtime dependencies and the wheel; its bin directory."""
    home = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", home / "venv"], cwd=home)
    python = home / "venv" / "bin" / "python"
    uv: list[str | Path] = [
        Path(sys.executable).with_name("uv"),
        "pip",
        "install",
        "--quiet",
        "--python",
        python,
        "--no-deps",
    ]
    run([*uv, "--require-hashes", "-r", REPO / "requirements.lock"], cwd=home)
    run([*uv, wheel], cwd=home)
    return python.parent


def clean_env(bin_dir: Path, home: Path) -> dict[str, str]:
    """No APPLYQ_* settings, no PYTHONPATH, no virtualenv of the checkout: only the installed wheel."""
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb"}


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("worker/")}
    assert package_files() - shipped == set()  # Lua scripts, migrations and their template, py.typed included
    assert {"worker/traffic/lua/gate.lua", "worker/db/migrations/env.py", "worker/py.typed"} <= shipped


@pytest.mark.timeout(600)
def test_the_installed_wheel_migrates_and_runs_the_demo_from_an_empty_directory(
    venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Given a directory far from the checkout and an environment without the test suite's settings
    workdir = tmp_path_factory.mktemp("run")
    env = clean_env(venv, workdir)
    where = run([venv / "python", "-c", "import worker; print(worker.__file__)"], cwd=workdir, env=env)
    assert Path(where.strip()).is_relative_to(venv.parent), "the package must come from the wheel"
    # When the installed command migrates (SQLite in this directory) and runs the demo
    migrated = run([venv / "applyq", "migrate"], cwd=workdir, env=env, timeout_s=120)
    assert "database schema is up to date" in migrated and (workdir / "applyq.db").is_file()
    demo = run([venv / "applyq", "demo", "--timeout-s", "240"], cwd=workdir, env=env, timeout_s=420)
    # Then every scripted application ends as scripted, through the worker and sandbox the wheel installed
    scripted = re.search(r"(\d+)/(\d+) as scripted", demo)
    assert scripted is not None and scripted[1] == scripted[2] and int(scripted[1]) > 0, demo
