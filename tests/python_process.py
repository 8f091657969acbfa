"""Run a snippet in a fresh interpreter: what a test needs to see a clean `sys.modules`."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, *, path: str | Path = REPO, timeout: float = 120) -> None:
    """Run `code` with `path` as PYTHONPATH; fail the test with its stderr if it fails."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]


def in_fresh_interpreter(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run this test in a pytest of its own: for a test whose subject (concurrent training in
    threads) can crash the process when other tests loaded a second OpenMP runtime (torch's
    beside LightGBM's or XGBoost's), which a fresh interpreter does not have."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nodeid = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        if os.environ.get("FRESH_INTERPRETER_TEST") == nodeid:
            return test(*args, **kwargs)
        env = {**os.environ, "FRESH_INTERPRETER_TEST": nodeid}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", nodeid],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return None

    return wrapper
