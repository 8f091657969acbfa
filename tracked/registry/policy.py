"""Promotion policies: the rules a model version must pass before it gets an alias.

Pure data and logic, no MLflow: the lifecycle layer turns registry state into `Candidate`s and
acts on the `Decision`. Evaluation never raises for data problems (a missing, NaN or non-numeric
metric, a failing user check, a failing holder lookup); the rule fails and says why instead.

    policy = PromotionPolicy(
        to="champion",
        when=[metric("val_auc") >= 0.80,
              metric("val_auc").beats("champion", by=0.005),
              metric("latency_ms") <= 20],
        require_clean_git=True)
    decision = policy.evaluate(candidate, holders)

Aliases are lower-case: `to="Production"` and `beats("Champion")` mean `production` and `champion`
(`normalize_alias`), so one spelling can never create a second alias beside the first. MLflow's
own alias rules apply on top: letters, digits, `_` and `-`, at most 255 characters, and
`latest` and `v<digits>` are reserved.

Policies are data too: `PromotionPolicy.to_dict()` / `from_dict()` give a JSON-safe, versioned
form (`{"format": 1, ...}`) that a spool or journal keeps instead of code. Every built-in rule
round-trips; a custom check (a callable) cannot, and comes back as a rule that fails and says so.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tracked import tags
from tracked.errors import PolicyError, TrackingError

__all__ = [
    "POLICY_FORMAT",
    "Beats",
    "Between",
    "Candidate",
    "Check",
    "CleanGit",
    "Decision",
    "Metric",
    "PromotionPolicy",
    "RequiredValue",
    "Rule",
    "RuleResult",
    "Threshold",
    "Unreplayable",
    "evaluate_policies",
    "metric",
    "normalize_alias",
    "normalize_stage",
]

POLICY_FORMAT = 1  # the version of PromotionPolicy.to_dict()'s layout

Holders = Callable[[str], "Candidate | None"]
OnMissing = Literal["pass", "fail"]

_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_VERSION_ALIAS = re.compile(r"[vV][0-9]+")  # MLflow reserves these for "version N" references
_MAX_ALIAS_LENGTH = 255
_STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
_NEGATION = {">=": "<", ">": "<=", "<=": ">", "<": ">="}


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Candidate:
    """A registered model version as the policy sees it (MLflow stores params and tags as str)."""

    name: str
    version: str
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]
    run_id: str | None = None

    def __post_init__(self) -> None:
        # MLflow hands out versions as str in some APIs and int in others; compare one way.
        object.__setattr__(self, "version", str(self.version))


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule; non-finite floats are kept as "nan"/"inf" so JSON stays strict."""

    rule: str
    passed: bool
    observed: float | str | None
    threshold: float | str | None
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", bool(self.passed))
        object.__setattr__(self, "observed", _json_scalar(self.observed))
        object.__setattr__(self, "threshold", _json_scalar(self.threshold))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=str(_required(d, "rule")),
            passed=bool(_required(d, "passed")),
            observed=d.get("observed"),
            threshold=d.get("threshold"),
            reason=str(_required(d, "reason")),
        )


@dataclass(frozen=True)
class Decision:
    """Whether `model` version `version` may take alias `to`, rule by rule.

    `promoted` means every rule passed; the lifecycle layer records an override by replacing
    the decision with `forced=True`. `unchanged` means the version already held `to`: nothing
    was evaluated or moved.
    """

    model: str
    version: str
    to: str
    promoted: bool
    rules: tuple[RuleResult, ...]
    reason: str
    previous: str | None = None
    forced: bool = False
    evaluated_at: float = field(default_factory=time.time)
    unchanged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "to": self.to,
            "promoted": self.promoted,
            "forced": self.forced,
            "unchanged": self.unchanged,
            "previous": self.previous,
            "reason": self.reason,
            "evaluated_at": self.evaluated_at,
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        previous = d.get("previous")
        return cls(
            model=str(_required(d, "model")),
            version=str(_required(d, "version")),
            to=str(_required(d, "to")),
            promoted=bool(_required(d, "promoted")),
            rules=tuple(RuleResult.from_dict(r) for r in d.get("rules", ())),
            reason=str(_required(d, "reason")),
            previous=None if previous is None else str(previous),
            forced=bool(d.get("forced", False)),
            evaluated_at=float(d.get("evaluated_at", 0.0)),
            unchanged=bool(d.get("unchanged", False)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=True)

    def summary(self) -> str:
        """Rule-by-rule text for the CLI and for printing in a notebook."""
        verdict = (
            "UNCHANGED"
            if self.unchanged
            else "FORCED"
            if self.forced
            else "PROMOTED"
            if self.promoted
            else "REFUSED"
        )
        lines = [f"{self.model} v{self.version} -> {self.to}: {verdict} ({self.reason})"]
        if self.previous is not None:
            lines.append(f"  previous {self.to}: v{self.previous}")
        for r in self.rules:
            lines.append(f"  {'pass' if r.passed else 'FAIL'}  {r.rule}: {r.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- rules


class Rule:
    """Base of every rule: subclasses implement `evaluate` and a `__str__` that reads like one."""

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-safe data; a rule tracked does not know is code, kept by name only."""
        return {"kind": "check", "name": str(self)}

    def __bool__(self) -> bool:
        # `0.8 <= metric("m") <= 0.9` would silently keep only the second half; refuse it.
        raise PolicyError(
            f"tracked: promotion rule {self!r} has no truth value; "
            "use metric(...).between(lo, hi) instead of a chained comparison"
        )


@dataclass(frozen=True)
class Metric:
    """A logged metric to write rules about: compare it with `>=`, `>`, `<=`, `<`, or `.beats`."""

    name: str
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _invalid("metric name", self.name, "must be a non-empty string")

    def __ge__(self, other: object) -> Threshold:
        return Threshold(self.name, ">=", _number(other, f"{self!r} >= threshold"))

    def __gt__(self, other: object) -> Threshold:
        return Threshold(self.name, ">", _number(other, f"{self!r} > threshold"))

    def __le__(self, other: object) -> Threshold:
        return Threshold(self.name, "<=", _number(other, f"{self!r} <= threshold"))

    def __lt__(self, other: object) -> Threshold:
        return Threshold(self.name, "<", _number(other, f"{self!r} < threshold"))

    def between(self, lo: float, hi: float) -> Between:
        """Inclusive range: `lo <= metric <= hi`."""
        lo_, hi_ = _number(lo, f"{self!r}.between lo"), _number(hi, f"{self!r}.between hi")
        if lo_ > hi_:
            raise _invalid(f"{self!r}.between", (lo, hi), "lo must not exceed hi")
        return Between(self.name, lo_, hi_)

    def beats(
        self,
        alias: str,
        *,
        by: float | None = None,
        by_relative: float | None = None,
        higher_is_better: bool | None = None,
        if_no_holder: OnMissing = "pass",
        if_holder_missing: OnMissing = "pass",
    ) -> Beats:
        """Gain over the version holding `alias` is at least `by` (absolute) or `by_relative`.

        With neither, a tie passes (the candidate is at least as good). `if_no_holder` decides
        when no version holds `alias`; `if_holder_missing` when the holder lacks this metric.
        """
        if by is not None and by_relative is not None:
            raise _invalid("by_relative", by_relative, "give either by= or by_relative=, not both")
        if higher_is_better is None:
            higher_is_better = self.higher_is_better
        return Beats(
            metric=self.name,
            alias=alias,
            by=0.0 if by is None and by_relative is None else by,
            by_relative=by_relative,
            higher_is_better=higher_is_better,
            if_no_holder=if_no_holder,
            if_holder_missing=if_holder_missing,
        )

    def __repr__(self) -> str:
        if self.higher_is_better:
            return f"metric({self.name!r})"
        return f"metric({self.name!r}, higher_is_better=False)"


def metric(name: str, *, higher_is_better: bool = True) -> Metric:
    """Refer to a logged metric in a rule; set the direction once for `.beats`."""
    return Metric(name, higher_is_better)


@dataclass(frozen=True, repr=False)
class Threshold(Rule):
    """`metric op value` for op in >=, >, <=, <."""

    metric: str
    op: Literal[">=", ">", "<=", "<"]
    value: float

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        observed, problem = _metric_value(candidate, self.metric)
        if problem is not None:
            return RuleResult(str(self), False, observed, self.value, problem)
        assert observed is not None
        passed = _compare(observed, self.op, self.value)
        observed_text, limit = f"{self.metric} {_num(observed)}", _num(self.value)
        if passed:
            reason = f"{observed_text} {self.op} {limit}"
        else:
            reason = f"{observed_text} {_NEGATION[self.op]} {limit} (needs {self.op} {limit})"
        return RuleResult(str(self), passed, observed, self.value, reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "threshold",
            "metric": self.metric,
            "op": self.op,
            "value": _data(self.value),
        }

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {_num(self.value)}"

    def __repr__(self) -> str:
        return f"metric({self.metric!r}) {self.op} {_code(self.value)}"


@dataclass(frozen=True, repr=False)
class Between(Rule):
    """`lo <= metric <= hi`."""

    metric: str
    lo: float
    hi: float

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        threshold = f"[{_num(self.lo)}, {_num(self.hi)}]"
        observed, problem = _metric_value(candidate, self.metric)
        if problem is not None:
            return RuleResult(str(self), False, observed, threshold, problem)
        assert observed is not None
        passed = self.lo <= observed <= self.hi
        verb = "is between" if passed else "is not between"
        reason = f"{self.metric} {_num(observed)} {verb} {_num(self.lo)} and {_num(self.hi)}"
        return RuleResult(str(self), passed, observed, threshold, reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "between",
            "metric": self.metric,
            "lo": _data(self.lo),
            "hi": _data(self.hi),
        }

    def __str__(self) -> str:
        return f"{_num(self.lo)} <= {self.metric} <= {_num(self.hi)}"

    def __repr__(self) -> str:
        return f"metric({self.metric!r}).between({_code(self.lo)}, {_code(self.hi)})"


@dataclass(frozen=True, repr=False)
class Beats(Rule):
    """The candidate improves on the version currently holding `alias` by a margin."""

    metric: str
    alias: str
    by: float | None = 0.0
    by_relative: float | None = None
    higher_is_better: bool = True
    if_no_holder: OnMissing = "pass"
    if_holder_missing: OnMissing = "pass"

    def __post_init__(self) -> None:
        object.__setattr__(self, "alias", normalize_alias(self.alias, "beats alias"))
        if (self.by is None) == (self.by_relative is None):
            raise _invalid("by", self.by, "give exactly one of by= or by_relative=")
        if self.by is not None:
            object.__setattr__(self, "by", _margin("by", self.by))
        if self.by_relative is not None:
            object.__setattr__(self, "by_relative", _margin("by_relative", self.by_relative))
        for name in ("if_no_holder", "if_holder_missing"):
            if getattr(self, name) not in ("pass", "fail"):
                raise _invalid(name, getattr(self, name), "must be 'pass' or 'fail'")

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        rule, alias = str(self), self.alias
        try:
            holder = holders(alias)
        except Exception as exc:  # a registry hiccup must refuse, not crash, the promotion
            return RuleResult(rule, False, None, None, _unreadable_holder(alias, exc))
        if holder is not None and holder.version == candidate.version:
            observed = _metric_value(candidate, self.metric)[0]
            return RuleResult(rule, True, observed, None, f"already holds {alias}")

        observed, problem = _metric_value(candidate, self.metric)
        if problem is not None:
            return RuleResult(rule, False, observed, None, problem)
        assert observed is not None
        if holder is None:
            return self._by_default(
                observed, self.if_no_holder, f"no current {alias}", "if_no_holder"
            )
        base, problem = _metric_value(holder, self.metric)
        if problem is not None or base is None:
            held = f"{alias} v{holder.version}"
            if _lookup(holder.metrics, self.metric) is None:
                what = f"{held} has no {self.metric}"
            else:
                what = f"{held} has no usable {self.metric} ({problem})"
            return self._by_default(observed, self.if_holder_missing, what, "if_holder_missing")
        return self._compare(observed, base, f"{alias} v{holder.version} ({_num(base)})")

    def _compare(self, observed: float, base: float, holder_text: str) -> RuleResult:
        sign = 1.0 if self.higher_is_better else -1.0
        gain = _round12(sign * (observed - base))
        if self.by_relative is not None:
            margin, needed = self.by_relative, _round12(base + sign * self.by_relative * abs(base))
            if base == 0:
                # relative gain over 0 is unbounded when positive; ties stay ties
                rel = math.inf if gain > 0 else (0.0 if gain == 0 else -math.inf)
            else:
                rel = _round12(gain / abs(base))
            passed = rel >= margin
            shown, margin_text = _pct(rel), _pct(margin)
            if not passed and shown == margin_text:  # 0.9999999% must not read as "1% < 1%"
                shown = _pct(rel, 12)
        else:
            assert self.by is not None
            margin, needed = self.by, _round12(base + sign * self.by)
            passed = gain >= margin
            shown, margin_text = _num(gain), _num(margin)
        direction = "" if self.higher_is_better else " (lower is better)"
        text = f"{self.metric} {_num(observed)}"
        if passed:
            reason = f"{text} beats {holder_text} by {shown} >= {margin_text}{direction}"
        else:
            reason = f"{text} vs {holder_text}: gain {shown} < {margin_text}{direction}"
        return RuleResult(str(self), passed, observed, needed, reason)

    def _by_default(self, observed: float, outcome: str, what: str, option: str) -> RuleResult:
        if outcome == "pass":
            return RuleResult(str(self), True, observed, None, f"{what}; passes by default")
        return RuleResult(str(self), False, observed, None, f"{what} ({option}='fail')")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "beats",
            "metric": self.metric,
            "alias": self.alias,
            "by": self.by,
            "by_relative": self.by_relative,
            "higher_is_better": self.higher_is_better,
            "if_no_holder": self.if_no_holder,
            "if_holder_missing": self.if_holder_missing,
        }

    def __str__(self) -> str:
        if self.by_relative is not None:
            text = f"{self.metric} beats {self.alias} by {_pct(self.by_relative)}"
        elif self.by:
            text = f"{self.metric} beats {self.alias} by {_num(self.by)}"
        else:
            text = f"{self.metric} beats {self.alias}"
        return text if self.higher_is_better else f"{text} (lower is better)"

    def __repr__(self) -> str:
        args = [repr(self.alias)]
        if self.by_relative is not None:
            args.append(f"by_relative={_code(self.by_relative)}")
        elif self.by:
            args.append(f"by={_code(self.by)}")
        if not self.higher_is_better:
            args.append("higher_is_better=False")
        if self.if_no_holder != "pass":
            args.append(f"if_no_holder={self.if_no_holder!r}")
        if self.if_holder_missing != "pass":
            args.append(f"if_holder_missing={self.if_holder_missing!r}")
        return f"metric({self.metric!r}).beats({', '.join(args)})"


@dataclass(frozen=True, repr=False)
class RequiredValue(Rule):
    """A tag or param must be set, and equal `value` (as a string) unless `value` is None."""

    kind: Literal["tag", "param"]
    key: str
    value: str | None = None

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        source = candidate.tags if self.kind == "tag" else candidate.params
        raw = _lookup(source, self.key)
        if raw is None:
            return RuleResult(
                str(self), False, None, self.value, f"{self.kind} {self.key!r} was not set"
            )
        actual = str(raw)
        if self.value is None:
            return RuleResult(str(self), True, actual, None, f"{self.kind} {self.key} is set")
        passed = actual == self.value
        reason = f"{self.kind} {self.key} is {actual!r}"
        if not passed:
            reason += f", needs {self.value!r}"
        return RuleResult(str(self), passed, actual, self.value, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "required", "source": self.kind, "key": self.key, "value": self.value}

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.kind} {self.key} is set"
        return f"{self.kind} {self.key} == {self.value!r}"

    def __repr__(self) -> str:
        return f"RequiredValue({self.kind!r}, {self.key!r}, {self.value!r})"


@dataclass(frozen=True, repr=False)
class CleanGit(Rule):
    """The candidate's run was recorded from a clean git tree (tag `tracked.git.dirty`)."""

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        raw = _lookup(candidate.tags, tags.GIT_DIRTY)
        if raw is None:
            return RuleResult(str(self), False, None, "false", "no git state recorded")
        value = str(raw).strip().lower()
        dirty = tags.git_dirty({tags.GIT_DIRTY: value})
        if dirty is False:
            return RuleResult(str(self), True, value, "false", "git tree was clean")
        if dirty is True:
            return RuleResult(
                str(self), False, value, "false", "git tree was dirty (uncommitted changes)"
            )
        if value == "unknown":
            return RuleResult(
                str(self), False, value, "false", "git state unknown (not recorded in a git tree)"
            )
        return RuleResult(
            str(self), False, str(raw), "false", f"unreadable {tags.GIT_DIRTY} value {raw!r}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "clean_git"}

    def __str__(self) -> str:
        return "git tree clean"

    def __repr__(self) -> str:
        return "CleanGit()"


@dataclass(frozen=True, repr=False)
class Check(Rule):
    """A user callable `fn(candidate) -> bool | (bool, reason)`; an exception fails the rule."""

    fn: Callable[[Candidate], Any]

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        name = str(self)
        try:
            result = self.fn(candidate)
            if isinstance(result, tuple) and len(result) == 2:
                passed, reason = bool(result[0]), str(result[1])
            elif result is None:
                passed, reason = False, f"{name} returned None, expected a bool or (bool, reason)"
            else:
                passed = bool(result)
                reason = f"{name} {'passed' if passed else 'failed'}"
        except Exception as exc:  # user code: report it as the reason, never propagate
            return RuleResult(name, False, None, None, f"{name} raised {_exc_text(exc)}")
        return RuleResult(name, passed, None, None, reason)

    def to_dict(self) -> dict[str, Any]:
        """Only the name: code is not data (it comes back as an `Unreplayable` rule)."""
        name = getattr(self.fn, "__qualname__", None) or str(self)
        return {"kind": "check", "name": str(name)}

    def __str__(self) -> str:
        return getattr(self.fn, "__name__", None) or repr(self.fn)

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True, repr=False)
class Unreplayable(Rule):
    """A custom check read back from data (`PromotionPolicy.from_dict`): its code is not there,
    so it fails and says how to promote instead."""

    name: str

    def evaluate(self, candidate: Candidate, holders: Holders) -> RuleResult:
        return RuleResult(
            self.name,
            False,
            None,
            None,
            f"custom check {self.name!r} cannot be evaluated when replayed; declare the policy "
            "in [tool.tracked.policies] or promote by hand",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "check", "name": self.name}

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Unreplayable({self.name!r})"


# --------------------------------------------------------------------------- policy


class PromotionPolicy:
    """Which alias a candidate may take (`to`) and the rules it must pass to take it.

    `when` holds rules (`metric(...) >= x`, `.beats(...)`) and plain callables. `require_tags`
    and `require_params` map a key to its required value (compared as strings), or to None or
    `...` for "must be present". `stage` is an optional legacy MLflow stage to transition too.
    """

    __slots__ = (
        "name",
        "require_clean_git",
        "require_params",
        "require_tags",
        "rules",
        "stage",
        "to",
        "when",
    )

    def __init__(
        self,
        to: str,
        when: Sequence[Rule | Callable[[Candidate], Any]] | Rule = (),
        require_clean_git: bool = False,
        require_tags: Mapping[str, object] | None = None,
        require_params: Mapping[str, object] | None = None,
        stage: str | None = None,
        name: str | None = None,
    ) -> None:
        self.to: str = normalize_alias(to, "to")
        self.when: tuple[Rule, ...] = _rules_from(when)
        self.require_clean_git: bool = bool(require_clean_git)
        self.require_tags: dict[str, str | None] = _requirements("require_tags", require_tags)
        self.require_params: dict[str, str | None] = _requirements("require_params", require_params)
        self.stage: str | None = normalize_stage(stage)
        if name is not None and not isinstance(name, str):
            raise _invalid("name", name, "must be a string")
        self.name: str | None = name
        extra: list[Rule] = [CleanGit()] if self.require_clean_git else []
        extra += [RequiredValue("tag", k, v) for k, v in self.require_tags.items()]
        extra += [RequiredValue("param", k, v) for k, v in self.require_params.items()]
        self.rules: tuple[Rule, ...] = self.when + tuple(extra)

    def evaluate(self, candidate: Candidate, holders: Holders) -> Decision:
        """Judge `candidate`; `holders(alias)` is asked at most once per alias.

        When the current holder of `to` cannot be read (a registry hiccup), the decision is a
        refusal that says so: the alias must never move on a guess of who holds it.
        """
        lookup = _CachedHolders(holders)
        results = [_safe_evaluate(rule, candidate, lookup) for rule in self.rules]
        try:
            current = lookup(self.to)
        except Exception as exc:
            current = None
            if not any(isinstance(r, Beats) and r.alias == self.to for r in self.rules):
                # a beats rule on `to` already failed with this reason; else say it once here
                reason = _unreadable_holder(self.to, exc)
                results.append(RuleResult(f"read the current {self.to}", False, None, None, reason))
        failed = [r for r in results if not r.passed]
        if failed:
            reason = "; ".join(r.reason for r in failed)
        elif not results:
            reason = "no rules to check"
        elif len(results) == 1:
            reason = "1 rule passed"
        else:
            reason = f"all {len(results)} rules passed"
        return Decision(
            model=str(candidate.name),
            version=candidate.version,
            to=self.to,
            promoted=not failed,
            rules=tuple(results),
            reason=reason,
            previous=None if current is None else current.version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-safe data (`{"format": 1, ...}`); `from_dict` reads it back.

        Custom checks keep only their name: read back, they fail (see `Unreplayable`).
        """
        return {
            "format": POLICY_FORMAT,
            "to": self.to,
            "name": self.name,
            "stage": self.stage,
            "when": [rule.to_dict() for rule in self.when],
            "require_clean_git": self.require_clean_git,
            "require_tags": dict(self.require_tags),
            "require_params": dict(self.require_params),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PromotionPolicy:
        """The policy `to_dict` wrote; PolicyError naming the field for anything else."""
        if not isinstance(d, Mapping):
            raise _unreadable("policy", d, "must be a mapping")
        if d.get("format") != POLICY_FORMAT:
            raise _unreadable(
                "format", d.get("format"), f"this tracked reads format {POLICY_FORMAT}"
            )
        when = d.get("when", [])
        if not isinstance(when, list):
            raise _unreadable("when", when, "must be a list of rules")
        return cls(
            to=_field(d, "to", str),
            when=[_rule_from_dict(rule) for rule in when],
            require_clean_git=bool(d.get("require_clean_git", False)),
            require_tags=d.get("require_tags") or None,
            require_params=d.get("require_params") or None,
            stage=d.get("stage"),
            name=d.get("name"),
        )

    def __repr__(self) -> str:
        args = [f"to={self.to!r}"]
        if self.when:
            args.append(f"when=[{', '.join(repr(r) for r in self.when)}]")
        if self.require_clean_git:
            args.append("require_clean_git=True")
        if self.require_tags:
            args.append(f"require_tags={_requirements_repr(self.require_tags)}")
        if self.require_params:
            args.append(f"require_params={_requirements_repr(self.require_params)}")
        if self.stage is not None:
            args.append(f"stage={self.stage!r}")
        if self.name is not None:
            args.append(f"name={self.name!r}")
        return f"PromotionPolicy({', '.join(args)})"


def evaluate_policies(
    policies: Sequence[PromotionPolicy], candidate: Candidate, holders: Holders
) -> list[Decision]:
    """Evaluate each policy on its own (e.g. challenger first, then champion), in order."""
    return [policy.evaluate(candidate, holders) for policy in policies]


# --------------------------------------------------------------------------- helpers


class _CachedHolders:
    """Ask the registry once per alias per evaluation, remembering failures too."""

    def __init__(self, holders: Holders) -> None:
        self._holders = holders
        self._seen: dict[str, tuple[Candidate | None, Exception | None]] = {}

    def __call__(self, alias: str) -> Candidate | None:
        if alias not in self._seen:
            try:
                holder = self._holders(alias)
                if holder is not None and not isinstance(holder, Candidate):
                    raise TypeError(f"holders({alias!r}) returned {holder!r}, not a Candidate")
                self._seen[alias] = (holder, None)
            except Exception as exc:
                self._seen[alias] = (None, exc)
        holder, error = self._seen[alias]
        if error is not None:
            raise error
        return holder


def _safe_evaluate(rule: Rule, candidate: Candidate, holders: Holders) -> RuleResult:
    # Last line of defence for custom Rule subclasses: a bug there refuses, never crashes.
    try:
        result = rule.evaluate(candidate, holders)
    except Exception as exc:
        return RuleResult(str(rule), False, None, None, f"could not be evaluated: {_exc_text(exc)}")
    if not isinstance(result, RuleResult):
        return RuleResult(str(rule), False, None, None, f"returned {result!r}, not a RuleResult")
    return result


def _rules_from(when: object) -> tuple[Rule, ...]:
    if isinstance(when, Rule) or (callable(when) and not isinstance(when, Metric)):
        when = [when]
    if isinstance(when, (str, bytes, Mapping)) or not isinstance(when, Iterable):
        raise _invalid("when", when, "must be a list of rules or callables")
    rules: list[Rule] = []
    for i, item in enumerate(when):
        if isinstance(item, Rule):
            rules.append(item)
        elif isinstance(item, bool):
            raise _invalid(
                f"when[{i}]",
                item,
                "a comparison gave a bool; `==` is not a rule, use >=, <=, or .between(lo, hi)",
            )
        elif isinstance(item, Metric):
            raise _invalid(f"when[{i}]", item, "compare the metric, e.g. metric('m') >= 0.8")
        elif callable(item):
            rules.append(Check(item))
        else:
            raise _invalid(f"when[{i}]", item, "must be a rule or a callable(candidate)")
    return tuple(rules)


def _requirements(field_name: str, given: Mapping[str, object] | None) -> dict[str, str | None]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise _invalid(field_name, given, "must be a mapping of key to required value")
    out: dict[str, str | None] = {}
    for key, value in given.items():
        if not isinstance(key, str) or not key:
            raise _invalid(field_name, key, "keys must be non-empty strings")
        out[key] = None if value is None or value is Ellipsis else str(value)
    return out


def _requirements_repr(req: Mapping[str, str | None]) -> str:
    items = (f"{k!r}: {'...' if v is None else repr(v)}" for k, v in req.items())
    return "{" + ", ".join(items) + "}"


def normalize_stage(stage: str | None) -> str | None:
    """A legacy MLflow stage in MLflow's spelling (`production` -> `Production`), or None."""
    if stage is None:
        return None
    canonical = _STAGES.get(stage.lower()) if isinstance(stage, str) else None
    if canonical is None:
        raise _invalid("stage", stage, "must be one of Staging, Production, Archived, None")
    return canonical


def normalize_alias(alias: object, field_name: str = "alias") -> str:
    """`alias` as tracked writes and reads it: checked against MLflow's rules, then lower-cased
    (`Production` -> `production`); PolicyError naming `field_name` when it is not an alias."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise _invalid(field_name, alias, "an alias is a letter or _ then letters, digits, _ or -")
    if alias.lower() == "latest" or _VERSION_ALIAS.fullmatch(alias):
        raise _invalid(field_name, alias, "reserved by MLflow; pick a name like 'champion'")
    if len(alias) > _MAX_ALIAS_LENGTH:
        raise _invalid(field_name, alias, f"longer than {_MAX_ALIAS_LENGTH} characters")
    return alias.lower()


def _unreadable_holder(alias: str, exc: BaseException) -> str:
    detail = str(exc) if isinstance(exc, TrackingError) else _exc_text(exc)
    return f"could not read the current {alias}: {detail}"


def _data(x: float) -> float | str:
    """A number as JSON-safe data: infinities as "inf"/"-inf" (NaN is never a threshold)."""
    return x if math.isfinite(x) else repr(x)


def _number_data(value: object, field_name: str) -> float:
    if value in ("inf", "-inf"):
        return float(str(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _unreadable(field_name, value, "must be a number")
    return float(value)


def _field(d: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in d:
        raise _unreadable(key, None, "missing")
    value = d[key]
    if not isinstance(value, kind):
        raise _unreadable(key, value, f"must be a {kind.__name__}")
    return value


def _rule_from_dict(d: object) -> Rule:
    if not isinstance(d, Mapping):
        raise _unreadable("rule", d, "must be a mapping with a 'kind'")
    kind = d.get("kind")
    if kind == "threshold":
        op = _field(d, "op", str)
        if op not in _NEGATION:
            raise _unreadable("op", op, "must be one of >=, >, <=, <")
        return Threshold(_field(d, "metric", str), op, _number_data(d.get("value"), "value"))
    if kind == "between":
        lo, hi = _number_data(d.get("lo"), "lo"), _number_data(d.get("hi"), "hi")
        return Metric(_field(d, "metric", str)).between(lo, hi)
    if kind == "beats":
        by, by_relative = d.get("by"), d.get("by_relative")
        return Beats(
            metric=_field(d, "metric", str),
            alias=_field(d, "alias", str),
            by=None if by is None else _number_data(by, "by"),
            by_relative=None if by_relative is None else _number_data(by_relative, "by_relative"),
            higher_is_better=bool(d.get("higher_is_better", True)),
            if_no_holder=d.get("if_no_holder", "pass"),
            if_holder_missing=d.get("if_holder_missing", "pass"),
        )
    if kind == "required":
        source = d.get("source")
        if source not in ("tag", "param"):
            raise _unreadable("source", source, "must be 'tag' or 'param'")
        value = d.get("value")
        return RequiredValue(source, _field(d, "key", str), None if value is None else str(value))
    if kind == "clean_git":
        return CleanGit()
    if kind == "check":
        return Unreplayable(_field(d, "name", str))
    raise _unreadable("kind", kind, f"format {POLICY_FORMAT} has no such rule")


def _unreadable(field_name: str, value: object, fix: str) -> PolicyError:
    return PolicyError(f"tracked: cannot read promotion policy {field_name}={value!r}: {fix}")


def _number(value: object, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(field_name, value, "must be a number")
    number = float(value)
    if math.isnan(number):
        raise _invalid(field_name, value, "must not be NaN")
    return number


def _margin(field_name: str, value: object) -> float:
    number = _number(value, field_name)
    if number < 0 or math.isinf(number):
        raise _invalid(field_name, value, "must be a finite number >= 0")
    return number


def _invalid(field_name: str, value: object, fix: str) -> PolicyError:
    return PolicyError(f"tracked: invalid promotion policy {field_name}={value!r}: {fix}")


def _lookup(source: object, key: str) -> object | None:
    try:
        return source.get(key) if isinstance(source, Mapping) else None
    except Exception:  # an odd mapping type is a data problem, not a crash
        return None


def _metric_value(candidate: Candidate, name: str) -> tuple[float | None, str | None]:
    """The metric as a float, or (observed-if-any, reason it is unusable)."""
    raw = _lookup(candidate.metrics, name)
    if raw is None:
        return None, f"metric {name!r} was not logged"
    if isinstance(raw, bool) or not isinstance(raw, (numbers.Real, str)):
        return None, f"metric {name!r} is not a number: {_short_repr(raw)}"
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        return None, f"metric {name!r} is not a number: {_short_repr(raw)}"
    if math.isnan(value):
        return value, f"metric {name!r} is NaN"
    return value, None


def _compare(observed: float, op: str, value: float) -> bool:
    if op == ">=":
        return observed >= value
    if op == ">":
        return observed > value
    if op == "<=":
        return observed <= value
    return observed < value


def _round12(x: float) -> float:
    # 0.81 - 0.8 is 0.010000000000000009 in binary floats; at 12 significant digits a gain of
    # "0.01" means what the user reads, and the reason text shows the number that was compared.
    return float(f"{x:.12g}")


def _num(x: float) -> str:
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:.12g}"


def _code(x: float) -> str:
    """A number as the user would type it: 20, not 20.0."""
    return str(int(x)) if math.isfinite(x) and x.is_integer() and abs(x) < 1e16 else repr(x)


def _pct(x: float, digits: int = 6) -> str:
    return f"{x * 100:.{digits}g}%"


def _json_scalar(value: object) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else repr(number)
    return str(value)


def _required(d: Mapping[str, Any], key: str) -> Any:
    if key not in d:
        raise PolicyError(f"tracked: cannot read promotion decision: missing {key!r}")
    return d[key]


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _exc_text(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
