"""Every script in examples/ runs, as a user would run it, on a fresh embedded store."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))
EXPECTED = {
    "quickstart.py": ["run_id=", "val_auc="],
    "sklearn_decorator.py": ["registered examples-churn-sklearn version 1", "predictions match"],
    "lineage.py": ["<- differs", "versions trained on this exact y_train: ['1', '2']"],
    "promotion_rules.py": ["v2 -> champion: REFUSED", "champion: version 3"],
    "xgboost_with_block.py": ["registered", "version 1"],
    "torch_loop.py": ["version 1; predictions match: True"],
    "lightning_fit.py": ["version 1 from the best checkpoint"],
    "keras_fit.py": ["version 1; predictions match: True"],
    "catboost_fit.py": ["version 1; predictions match: True"],
    "transformers_trainer.py": ["version 1; predictions match: True"],
    "optuna_sweep.py": ["12 trial runs under run", "version 1; predictions match: True"],
    "search_cv.py": ["6 candidate runs under run", "version 1; predictions match: True"],
}
# A package an example needs beyond the `dev` extra's, and why it may be missing.
NEEDS = {"transformers_trainer.py": ("accelerate", "transformers' Trainer needs accelerate>=1.1")}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    package, why = NEEDS.get(script.name, (None, ""))
    if package is not None and importlib.util.find_spec(package) is None:
        pytest.skip(f"{why}; {package} is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKED_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in EXPECTED.get(script.name, []):
        assert expected in done.stdout, done.stdout
    assert (tmp_path / "mlflow.db").exists()  # the embedded default store, in the working dir


def test_quickstart_run_has_params_metrics_and_git_tags(tmp_path: Path) -> None:
    script = Path(__file__).parent.parent / "examples" / "quickstart.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKED_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    import mlflow

    run = mlflow.MlflowClient(values["tracking_uri"]).get_run(values["run_id"])
    assert run.data.params["max_depth"] == "6"
    assert run.data.metrics["val_auc"] == pytest.approx(float(values["val_auc"]), abs=1e-3)
    if (script.parent.parent / ".git").exists():
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert run.data.tags["tracked.git.dirty"] in ("true", "false")
