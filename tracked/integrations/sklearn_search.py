"""scikit-learn's hyperparameter searches inside a run: one child run per candidate.

Imported by `scope` only when `sklearn.model_selection._search` is. `fit` of `GridSearchCV`,
`RandomizedSearchCV`, `HalvingGridSearchCV`, `HalvingRandomSearchCV` (every `BaseSearchCV`)
is one training of the run. It records:

- on the training (the run itself for a lone search): the search's settings as params,
  `search.class`, `search.estimator` (the estimator's class), `search.cv`, `search.scoring`,
  `search.refit`, `search.n_candidates`, `search.n_splits`; the best candidate's params
  (`best_params_`, under their own names), `best_score` (when the search has one) and the best
  candidate's index as the `tracked.sweep.best_trial` tag; `best_estimator_` as the model (the
  one registered when the search is the run's training);
- one child run of the run per candidate, `candidate-<index>` (tagged `tracked.trial`): its
  params, and every `mean_*`, `std_*` and `rank_*` column of `cv_results_` as metrics
  (`mean_test_score`, `std_test_score`, `rank_test_score`, `mean_train_<scorer>` with several
  scorers and `return_train_score=True`, `mean_fit_time`, ...). A successive-halving search
  evaluates a candidate once per iteration it survives: its run has one point per iteration
  (step = `iter`), with `n_resources`. A candidate whose every fit failed (a NaN test score) ends
  FAILED with state FAIL; the others FINISHED with state COMPLETE.

Everything is read from `cv_results_` in this process after `fit`, so it is the same whatever
joblib backend ran the fits (processes, threads, a Dask cluster). The fits inside the search
(the candidates' and the final refit) are not trainings of their own: XGBoost, LightGBM or
CatBoost estimators inside the search add no child runs.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

from tracked import tags as T
from tracked.integrations import sweeps
from tracked.integrations.methods import method_hook
from tracked.integrations.scope import Hook

if TYPE_CHECKING:
    from tracked.run import TrackedRun, Training

__all__ = ["patch_targets"]

_FRAMEWORK = "sklearn"
_METRIC_PREFIXES = ("mean_", "std_", "rank_")


def patch_targets() -> list[tuple[Any, str, Hook]]:
    """`BaseSearchCV.fit`: every search's fit ends in it (successive halving's through super).
    Read from `sys.modules`: scope calls this once scikit-learn imported the module, and
    scikit-learn is the user's dependency, not one of tracked's."""
    search = sys.modules["sklearn.model_selection._search"]
    return [(search.BaseSearchCV, "fit", method_hook(_SearchFit, autolog=("sklearn",)))]


class _SearchFit:
    """One search's `fit` as a training; its candidates as child runs after it."""

    framework = _FRAMEWORK
    produces_model = False  # the model is best_estimator_, not the search object

    def __init__(self, run: TrackedRun, search: Any) -> None:
        self.search = search
        self.name = f"{type(search).__name__}.fit"

    def before(self, training: Training, arguments: dict[str, Any]) -> None:
        search = self.search
        training.log_params(
            {
                "search.class": type(search).__name__,
                "search.estimator": type(search.estimator).__name__,
                "search.cv": _text(search.cv),
                "search.scoring": _text(search.scoring),
                "search.refit": _text(search.refit),
            }
        )
        training.set_tags({T.SWEEP_ENGINE: _FRAMEWORK})

    def after(self, training: Training, result: Any) -> None:
        search = self.search
        results = search.cv_results_
        rows = _candidates(results)
        training.log_params(
            {"search.n_candidates": len(rows), "search.n_splits": getattr(search, "n_splits_", "")}
        )
        index = getattr(search, "best_index_", None)
        if index is not None:
            best = int(index)
            training.log_params(results["params"][best])
            training.set_tags({T.SWEEP_BEST_TRIAL: _candidate_of(rows, best)})
            score = getattr(search, "best_score_", None)
            if score is None and "mean_test_score" in results:
                score = results["mean_test_score"][best]
            if score is not None and math.isfinite(float(score)):
                training.log_metrics({"best_score": float(score)})
        for number, row_indices in enumerate(rows):
            _candidate_run(training.run, number, results, row_indices)
        model = getattr(search, "best_estimator_", None)
        if model is not None:
            training.set_model(model)


def _candidates(results: dict[str, Any]) -> list[list[int]]:
    """The rows of `cv_results_` of each candidate, in order of first appearance: one row each,
    or one per iteration for successive halving (the same params again)."""
    if "iter" not in results:
        return [[i] for i in range(len(results["params"]))]
    seen: dict[str, list[int]] = {}
    for i, params in enumerate(results["params"]):
        seen.setdefault(repr(sorted(params.items(), key=lambda kv: kv[0])), []).append(i)
    return list(seen.values())


def _candidate_of(rows: list[list[int]], row: int) -> int:
    return next(number for number, indices in enumerate(rows) if row in indices)


class _Failed(Exception):
    """Every fit of a candidate failed: ends its run FAILED (the reason is in its error.txt)."""


def _candidate_run(parent: TrackedRun, number: int, results: Any, rows: list[int]) -> None:
    params = results["params"][rows[0]]
    halving = "iter" in results
    columns = [
        key
        for key in results
        if key.startswith(_METRIC_PREFIXES) or (halving and key == "n_resources")
    ]
    run = sweeps.trial_run(parent, f"candidate-{number}", trial=number, params=params)
    try:
        with run:
            failed = False
            for row in rows:
                step = int(results["iter"][row]) if halving else None
                values = {key: float(results[key][row]) for key in columns}
                failed = any(
                    key.startswith("mean_test") and math.isnan(value)
                    for key, value in values.items()
                )
                run.log_metrics({k: v for k, v in values.items() if math.isfinite(v)}, step=step)
            run.set_tags({T.TRIAL_STATE: "FAIL" if failed else "COMPLETE"})
            if failed:
                raise _Failed(f"candidate {number} ({params}): every fit failed, its score is NaN")
    except _Failed:
        pass


def _text(value: Any) -> str:
    """A setting as a param: a callable scorer or cv by its name, else as scikit-learn prints
    it (`KFold(n_splits=3, random_state=None, shuffle=False)`, `None`)."""
    if callable(value) and not hasattr(value, "split"):
        return getattr(value, "__qualname__", None) or type(value).__name__
    return str(value)
