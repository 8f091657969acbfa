"""Which metric ranks versions and runs, and which way: chosen from what the project said.

The key metric, first found wins:

1. the caller's choice (`tracked compare -m val_auc`)
2. the run's `tracked.key_metric` tag (written from `key_metric=` on the decorator or run)
3. the first metric rule of the promotion policy configured for the alias
   (`[tool.tracked.policies]`)
4. the `key_metric` setting
5. a well-known quality metric among those logged: validation/test ones first (`val_auc` before
   `train_acc`), never a cost such as `latency_ms`, never an unknown name such as `tree_depth`

Its direction, first found wins: the caller's flag (`--higher-is-better/--lower-is-better`), the
policy's rules on that metric (`beats(..., higher_is_better=False)`, a `<=` threshold), the
metric's name (loss, rmse, mae, error, latency, time ... lower is better; auc, accuracy, f1 ...
higher; scikit-learn's `neg_` prefix flips it), else higher is better, and the result says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KeyMetric", "choose_key_metric", "direction", "first_metric", "name_direction"]

# Tokens of a metric name (split on _, -, ., /, camelCase) that say which way is better.
_LOWER_QUALITY = frozenset(
    {"loss", "rmse", "mse", "mae", "mape", "smape", "rmsle", "msle", "error", "err", "nll"}
    | {"perplexity", "ppl", "wer", "cer", "logloss", "mlogloss", "brier", "hinge", "fpr"}
    | {"fnr", "eer", "distance", "deviance", "residual"}
)
_LOWER_COST = frozenset(
    {"latency", "time", "duration", "seconds", "secs", "sec", "ms", "memory", "mem", "size"}
    | {"bytes", "cost", "runtime", "elapsed"}
)
_HIGHER_QUALITY = frozenset(
    {"auc", "roc", "accuracy", "acc", "f1", "f2", "fbeta", "precision", "recall", "ap", "map"}
    | {"ndcg", "mrr", "iou", "miou", "dice", "bleu", "rouge", "r2", "psnr", "ssim", "kappa"}
    | {"mcc", "score", "top1", "top5", "auroc", "auprc", "sensitivity", "specificity"}
    | {"throughput", "balanced"}
)
_EVAL_PREFIXES = frozenset({"val", "valid", "validation", "test", "eval", "holdout", "dev", "cv"})
_TRAIN_PREFIXES = frozenset({"train", "training", "fit"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class KeyMetric:
    """The metric a table ranks by, which way, and why (for the table's title and --json)."""

    name: str
    higher_is_better: bool
    chosen_by: str  # "argument", "run tag tracked.key_metric", "policy for 'champion'", ...
    direction_by: str  # "argument", "policy for 'champion'", "name (loss)", "default"

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tokens(name: str) -> list[str]:
    return [t for t in _SPLIT.split(_CAMEL.sub("_", name).lower()) if t]


def _token_direction(token: str) -> tuple[bool, bool] | None:
    """(higher_is_better, is_quality) for one token, or None when it says nothing."""
    if token in _HIGHER_QUALITY:
        return True, True
    if token in _LOWER_QUALITY or token.endswith(("loss", "error")):
        return False, True
    if token in _LOWER_COST:
        return False, False
    return None


def name_direction(name: str) -> tuple[bool, str] | None:
    """(higher_is_better, the word that says so) from a metric's name, or None if unknown."""
    tokens = _tokens(name)
    flip = bool(tokens) and tokens[0] == "neg"  # scikit-learn: neg_mean_squared_error
    telling = [(t, d) for t in tokens if (d := _token_direction(t)) is not None]
    telling.sort(key=lambda item: not item[1][1])  # a quality word before a cost word
    if not telling:
        return None
    token, (higher, _) = telling[0]
    return higher != flip, ("neg_" + token) if flip else token


def _quality_rank(name: str) -> tuple[int, str] | None:
    """Sort key for choosing a well-known key metric; None for costs and unknown names."""
    tokens = _tokens(name)
    telling = [_token_direction(t) for t in tokens]
    if not any(found is not None and found[1] for found in telling):
        return None
    if tokens and tokens[0] in _EVAL_PREFIXES:
        return 0, name
    if tokens and tokens[0] in _TRAIN_PREFIXES:
        return 2, name
    return 1, name


def first_metric(policy: Any) -> str | None:
    """The metric of the policy's first metric rule (threshold, range or beats)."""
    for rule in getattr(policy, "rules", ()) or ():
        metric = getattr(rule, "metric", None)
        if isinstance(metric, str) and metric:
            return metric
    return None


def _policy_direction(policy: Any, metric: str) -> bool | None:
    for rule in getattr(policy, "rules", ()) or ():
        if getattr(rule, "metric", None) != metric:
            continue
        if hasattr(rule, "alias") and hasattr(rule, "higher_is_better"):  # beats(...)
            return bool(rule.higher_is_better)
        op = getattr(rule, "op", None)
        if op in (">=", ">"):
            return True
        if op in ("<=", "<"):
            return False
    return None


def direction(
    metric: str,
    *,
    override: bool | None = None,
    policy: Any = None,
    policy_label: str = "policy",
) -> tuple[bool, str]:
    """(higher_is_better, why) for `metric`: the override, the policy, the name, the default."""
    if override is not None:
        return override, "argument"
    if policy is not None:
        found = _policy_direction(policy, metric)
        if found is not None:
            return found, policy_label
    by_name = name_direction(metric)
    if by_name is not None:
        return by_name[0], f"name ({by_name[1]})"
    return True, "default (not a well-known name: higher assumed)"


def choose_key_metric(
    *,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    tags: Mapping[str, str] | None = None,
    policy: Any = None,
    alias: str = "champion",
    setting: str | None = None,
    available: Iterable[str] = (),
) -> KeyMetric | None:
    """The key metric by the order in the module docstring; None when nothing names one."""
    from tracked.tags import KEY_METRIC

    label = f"policy for {alias!r}"
    tagged = (tags or {}).get(KEY_METRIC)
    if metric:
        name, chosen_by = metric, "argument"
    elif tagged:
        name, chosen_by = tagged, f"run tag {KEY_METRIC}"
    elif policy is not None and first_metric(policy):
        name, chosen_by = str(first_metric(policy)), label
    elif setting:
        name, chosen_by = setting, "setting key_metric"
    else:
        ranked = sorted(r for r in (_quality_rank(m) for m in set(available)) if r is not None)
        if not ranked:
            return None
        name, chosen_by = ranked[0][1], "well-known name"
    higher, why = direction(name, override=higher_is_better, policy=policy, policy_label=label)
    return KeyMetric(name, higher, chosen_by, why)
