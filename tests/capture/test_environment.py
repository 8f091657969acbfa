"""Environment tags and requirements: exact versions, and never an environment variable's value."""

from __future__ import annotations

import platform
import socket
from collections.abc import Iterator
from importlib import metadata

import pytest

from tracked.capture.environment import (
    KEY_PACKAGES,
    environment_tags,
    package_version,
    requirements_txt,
)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Both captures are cached per process; each test reads the environment it set up."""
    environment_tags.cache_clear()
    requirements_txt.cache_clear()
    yield
    environment_tags.cache_clear()
    requirements_txt.cache_clear()


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_interpreter_platform_and_host_tags() -> None:
    tags = environment_tags()

    assert tags["tracked.env.python"] == platform.python_version()
    assert tags["tracked.env.implementation"] == platform.python_implementation()
    assert tags["tracked.env.platform"] == platform.platform(terse=True)
    assert tags["tracked.env.hostname"] == socket.gethostname()


@pytest.mark.parametrize("name", KEY_PACKAGES)
def test_key_package_versions_match_installed_metadata(name: str) -> None:
    tags = environment_tags()

    version = _installed(name)
    if version is None:
        assert f"tracked.env.{name}" not in tags
    else:
        assert tags[f"tracked.env.{name}"] == version


def test_mlflow_and_tracked_are_always_tagged() -> None:
    tags = environment_tags()

    assert tags["tracked.env.mlflow"] == metadata.version("mlflow")
    assert tags["tracked.env.tracked"] == metadata.version("tracked")


def test_package_version_of_a_missing_distribution_is_none() -> None:
    assert package_version("no-such-distribution-for-tracked-tests") is None
    assert package_version("mlflow") == metadata.version("mlflow")


def test_requirements_list_every_distribution_pinned() -> None:
    text = requirements_txt()
    lines = text.splitlines()

    assert lines[0].startswith(f"# python {platform.python_version()} on ")
    assert f"mlflow=={metadata.version('mlflow')}" in lines
    assert f"xxhash=={metadata.version('xxhash')}" in lines
    body = lines[1:]
    assert body == sorted(body, key=lambda line: line.split("==")[0].lower())
    assert all("==" in line for line in body)
    names = [line.split("==")[0].lower() for line in body]
    assert len(names) == len(set(names))


def test_no_environment_variable_value_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tracked-env-secret-7f3a9c2e1b"
    monkeypatch.setenv("TRACKED_TEST_SECRET_VALUE", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{secret}@db/x")

    tags = environment_tags()
    text = requirements_txt()

    assert not any(secret in key or secret in value for key, value in tags.items())
    assert secret not in text
    assert "TRACKED_TEST_SECRET_VALUE" not in text
