"""The environment a run trained in, read from package metadata without importing anything heavy.

Environment variables are never captured wholesale: they are where credentials live. GPUs are
described where CUDA devices are present (`gpu_tags`); on a CPU-only machine there are no GPU
tags at all.
"""

from __future__ import annotations

import functools
import getpass
import importlib.util
import platform
import socket
import sys
from typing import Any

from tracked.tags import ENV_CUDA, ENV_GPU_COUNT, ENV_GPU_DRIVER, ENV_GPU_NAME, ENV_PREFIX

__all__ = [
    "KEY_PACKAGES",
    "current_user",
    "environment_tags",
    "gpu_tags",
    "package_version",
    "requirements_txt",
    "reset_caches",
]

# Versions worth a tag of their own: what decides whether a model loads and behaves the same.
KEY_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "torch",
    "lightning",
    "keras",
    "transformers",
    "tracked",
)


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_tags() -> dict[str, str]:
    """`tracked.env.*` tags: interpreter, platform, host, user, key package versions, GPUs."""
    return {**_static_tags(), **gpu_tags()}


@functools.lru_cache(maxsize=1)
def _static_tags() -> dict[str, str]:
    tags = {
        ENV_PREFIX + "python": platform.python_version(),
        ENV_PREFIX + "implementation": platform.python_implementation(),
        ENV_PREFIX + "platform": platform.platform(terse=True),
        ENV_PREFIX + "hostname": socket.gethostname(),
    }
    for name in KEY_PACKAGES:
        version = package_version(name)
        if version:
            tags[ENV_PREFIX + name] = version
    return tags


_gpus: dict[str, str] | None = None  # None: not known yet


def gpu_tags() -> dict[str, str]:
    """GPU count, name(s), driver and CUDA versions where CUDA devices are present; else {}.

    Read through `torch.cuda` when torch is already imported and has initialised CUDA, else
    through NVML (the `pynvml` module of nvidia-ml-py) when it is installed. Never imports torch
    and never initialises CUDA: a CUDA context created in the parent process breaks fork-based
    DataLoader workers. Until one of the two can answer, nothing is cached, so a run started
    after the training initialised CUDA still gets the tags.
    """
    global _gpus
    if _gpus is not None:
        return dict(_gpus)
    found = _torch_gpus()
    if found is None:
        found = _nvml_gpus()
    if found is None:
        return {}
    _gpus = found
    return dict(found)


def _torch_gpus() -> dict[str, str] | None:
    torch: Any = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():
        return None
    count = cuda.device_count()
    if count == 0:
        return {}
    tags = _gpu_tags([cuda.get_device_name(i) for i in range(count)])
    version = getattr(getattr(torch, "version", None), "cuda", None)
    if version:
        tags[ENV_CUDA] = str(version)  # the CUDA runtime torch was built with
    driver = (_nvml_gpus() or {}).get(ENV_GPU_DRIVER)
    if driver:
        tags[ENV_GPU_DRIVER] = driver
    return tags


@functools.lru_cache(maxsize=1)
def _has_nvml() -> bool:
    """Whether nvidia-ml-py is installed (looked up once: every run start asks)."""
    return importlib.util.find_spec("pynvml") is not None


def _nvml_gpus() -> dict[str, str] | None:
    if not _has_nvml():
        return None
    import pynvml

    try:
        pynvml.nvmlInit()
    except Exception:  # no NVIDIA driver on this machine
        return {}
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return {}
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        tags = _gpu_tags([_text(pynvml.nvmlDeviceGetName(h)) for h in handles])
        tags[ENV_GPU_DRIVER] = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = int(pynvml.nvmlSystemGetCudaDriverVersion())  # e.g. 12020: the driver's CUDA
        tags[ENV_CUDA] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        return tags
    except Exception:  # NVML answers partly on some virtualised GPUs: keep what is certain
        return {}
    finally:
        pynvml.nvmlShutdown()


def _gpu_tags(names: list[str]) -> dict[str, str]:
    """Count and name; several kinds of device are listed once each, in device order."""
    return {ENV_GPU_COUNT: str(len(names)), ENV_GPU_NAME: ", ".join(dict.fromkeys(names))}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def reset_caches() -> None:
    """Read the environment afresh on the next call (tests; a process that installed packages)."""
    global _gpus
    _gpus = None
    _static_tags.cache_clear()
    requirements_txt.cache_clear()


@functools.lru_cache(maxsize=1)
def requirements_txt() -> str:
    """`pip freeze`-style list of every installed distribution (cached: it doesn't change)."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.name
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    header = f"# python {platform.python_version()} on {sys.platform}\n"
    return header + "".join(line + "\n" for _, line in sorted(seen.items()))


@functools.cache
def current_user() -> str:
    """The login name, read once per process (a password-database lookup costs milliseconds)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
