"""Environment tags and requirements: exact versions, and never an environment variable's value."""

from __future__ import annotations

import importlib.util
import platform
import socket
from collections.abc import Iterator
from importlib import metadata

import pytest
from python_process import run_python

from tracked.capture.environment import (
    KEY_PACKAGES,
    environment_tags,
    gpu_tags,
    package_version,
    requirements_txt,
    reset_caches,
)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """The captures are cached per process; each test reads the environment it set up."""
    reset_caches()
    yield
    reset_caches()


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


# --- GPUs ---------------------------------------------------------------------------------------


def test_a_cpu_only_machine_has_no_gpu_tags_and_cuda_stays_uninitialised() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_initialized() or importlib.util.find_spec("pynvml") is not None:
        pytest.skip("this test is for a process where neither CUDA nor NVML can answer")
    assert gpu_tags() == {}
    assert not any(
        k.startswith(("tracked.env.gpu", "tracked.env.cuda")) for k in environment_tags()
    )
    assert not torch.cuda.is_initialized()  # asking never creates a CUDA context


def test_environment_tags_never_import_torch() -> None:
    code = (
        "import sys\n"
        "from tracked.capture.environment import environment_tags\n"
        "tags = environment_tags()\n"
        "assert 'torch' not in sys.modules and 'pynvml' not in sys.modules, 'imported'\n"
        "assert 'tracked.env.torch' in tags  # the version comes from package metadata\n"
    )
    run_python(code, timeout=60)


def test_gpus_read_through_torch_once_it_initialised_cuda(monkeypatch) -> None:
    # No GPU here: torch.cuda's answers are replaced to stand for a machine with two, which no
    # real part on this machine can produce. What is tested is which calls are made and how
    # their answers become tags.
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA A100-SXM4-40GB")
    monkeypatch.setattr(torch.version, "cuda", "12.4")

    tags = gpu_tags()
    assert tags["tracked.env.gpu.count"] == "2"
    assert tags["tracked.env.gpu.name"] == "NVIDIA A100-SXM4-40GB"
    assert tags["tracked.env.cuda"] == "12.4"
    assert environment_tags()["tracked.env.gpu.count"] == "2"


@pytest.mark.skipif(
    importlib.util.find_spec("pynvml") is None,
    reason="nvidia-ml-py (pynvml) is not installed here",
)
def test_nvml_answers_without_torch() -> None:
    tags = gpu_tags()
    if tags:  # a machine with an NVIDIA driver
        assert int(tags["tracked.env.gpu.count"]) >= 1 and tags["tracked.env.gpu.driver"]
    else:  # NVML installed but no driver: nothing, not an error
        assert tags == {}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda_available(), reason="no CUDA device on this machine")
def test_a_real_gpu_is_tagged_after_cuda_is_initialised() -> None:
    import torch

    torch.zeros(1, device="cuda")
    tags = gpu_tags()
    assert tags["tracked.env.gpu.count"] == str(torch.cuda.device_count())
    assert torch.cuda.get_device_name(0) in tags["tracked.env.gpu.name"]
    assert tags["tracked.env.cuda"] == torch.version.cuda
