"""The promotion rule language: every rule kind, its recorded reason, and never raising on data."""

from __future__ import annotations

import json
import math
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracked.errors import PolicyError, StoreUnavailableError
from tracked.registry.policy import (
    Beats,
    Between,
    Candidate,
    Check,
    CleanGit,
    Decision,
    Metric,
    PromotionPolicy,
    RequiredValue,
    Rule,
    RuleResult,
    Threshold,
    evaluate_policies,
    metric,
    normalize_alias,
)

FAST = settings(max_examples=60, deadline=None)


def candidate(
    version: str = "5",
    metrics: dict | None = None,
    params: dict | None = None,
    tags: dict | None = None,
) -> Candidate:
    return Candidate(
        name="churn",
        version=version,
        metrics={} if metrics is None else metrics,
        params=params or {},
        tags=tags or {},
        run_id="r" + version,
    )


def no_holders(alias: str) -> Candidate | None:
    return None


def holding(**by_alias: Candidate):
    return lambda alias: by_alias.get(alias)


def judge(rule: Rule, cand: Candidate, holders=no_holders) -> RuleResult:
    return PromotionPolicy(to="champion", when=[rule]).evaluate(cand, holders).rules[0]


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("rule", "value", "passed", "reason"),
    [
        (metric("val_auc") >= 0.8, 0.91, True, "val_auc 0.91 >= 0.8"),
        (metric("val_auc") >= 0.8, 0.8, True, "val_auc 0.8 >= 0.8"),
        (metric("val_auc") >= 0.8, 0.75, False, "val_auc 0.75 < 0.8 (needs >= 0.8)"),
        (metric("val_auc") > 0.8, 0.8, False, "val_auc 0.8 <= 0.8 (needs > 0.8)"),
        (metric("val_auc") > 0.8, 0.81, True, "val_auc 0.81 > 0.8"),
        (metric("latency_ms") <= 20, 18.5, True, "latency_ms 18.5 <= 20"),
        (metric("latency_ms") <= 20, 25, False, "latency_ms 25 > 20 (needs <= 20)"),
        (metric("latency_ms") < 20, 20, False, "latency_ms 20 >= 20 (needs < 20)"),
        (metric("latency_ms") < 20, 19, True, "latency_ms 19 < 20"),
        (0.8 <= metric("val_auc"), 0.9, True, "val_auc 0.9 >= 0.8"),  # noqa: SIM300 (reflected)
    ],
)
def test_threshold_rules_record_observed_threshold_and_reason(rule, value, passed, reason):
    name = rule.metric
    result = judge(rule, candidate(metrics={name: value}))
    assert (result.passed, result.reason) == (passed, reason)
    assert result.observed == float(value)
    assert result.threshold == rule.value
    assert result.rule == str(rule)


def test_threshold_text_reads_like_the_rule():
    assert str(metric("val_auc") >= 0.8) == "val_auc >= 0.8"
    assert repr(metric("latency_ms") <= 20) == "metric('latency_ms') <= 20"


def test_between_is_inclusive():
    rule = metric("val_auc").between(0.8, 0.9)
    assert str(rule) == "0.8 <= val_auc <= 0.9"
    assert repr(rule) == "metric('val_auc').between(0.8, 0.9)"
    assert judge(rule, candidate(metrics={"val_auc": 0.9})).reason == (
        "val_auc 0.9 is between 0.8 and 0.9"
    )
    failed = judge(rule, candidate(metrics={"val_auc": 0.95}))
    assert not failed.passed
    assert failed.reason == "val_auc 0.95 is not between 0.8 and 0.9"


@pytest.mark.parametrize(
    "rule",
    [
        metric("val_auc") >= 0.8,
        metric("val_auc").between(0, 1),
        metric("val_auc").beats("champion", by=0.01),
    ],
)
def test_missing_metric_fails_with_reason(rule):
    champion = candidate("3", {"val_auc": 0.5})
    result = judge(rule, candidate(metrics={"other": 1.0}), holding(champion=champion))
    assert not result.passed
    assert result.reason == "metric 'val_auc' was not logged"
    assert result.observed is None


def test_nan_and_non_numeric_metrics_fail_with_reason():
    nan = judge(metric("val_auc") >= 0.8, candidate(metrics={"val_auc": math.nan}))
    assert (nan.passed, nan.reason, nan.observed) == (False, "metric 'val_auc' is NaN", "nan")
    text = judge(metric("val_auc") >= 0.8, candidate(metrics={"val_auc": "high"}))
    assert (text.passed, text.reason) == (False, "metric 'val_auc' is not a number: 'high'")
    junk = judge(metric("val_auc") <= 1, candidate(metrics={"val_auc": [1]}))
    assert (junk.passed, junk.reason) == (False, "metric 'val_auc' is not a number: [1]")


def test_infinite_metric_is_compared_and_kept_json_safe():
    result = judge(metric("loss") <= 1, candidate(metrics={"loss": math.inf}))
    assert (result.passed, result.observed) == (False, "inf")


# --------------------------------------------------------------------------- beats


CHAMPION = candidate("3", {"val_auc": 0.905, "loss": 0.25})


def test_beats_absolute_pass_and_fail():
    rule = metric("val_auc").beats("champion", by=0.005)
    assert str(rule) == "val_auc beats champion by 0.005"
    ok = judge(rule, candidate(metrics={"val_auc": 0.912}), holding(champion=CHAMPION))
    assert ok.passed
    assert ok.reason == "val_auc 0.912 beats champion v3 (0.905) by 0.007 >= 0.005"
    assert (ok.observed, ok.threshold) == (0.912, 0.91)
    low = judge(rule, candidate(metrics={"val_auc": 0.906}), holding(champion=CHAMPION))
    assert not low.passed
    assert low.reason == "val_auc 0.906 vs champion v3 (0.905): gain 0.001 < 0.005"


def test_beats_margin_means_what_the_user_reads_despite_float_noise():
    # 0.81 - 0.8 == 0.010000000000000009 and 0.3 - 0.2 == 0.09999999999999998 in binary floats
    rule = metric("acc").beats("champion", by=0.1)
    assert judge(
        rule, candidate(metrics={"acc": 0.3}), holding(champion=candidate("1", {"acc": 0.2}))
    ).passed


def test_beats_without_margin_lets_a_tie_pass():
    rule = metric("val_auc").beats("champion")
    assert str(rule) == "val_auc beats champion"
    tie = judge(rule, candidate(metrics={"val_auc": 0.905}), holding(champion=CHAMPION))
    assert tie.passed
    worse = judge(rule, candidate(metrics={"val_auc": 0.9}), holding(champion=CHAMPION))
    assert not worse.passed


def test_beats_relative():
    rule = metric("val_auc").beats("champion", by_relative=0.01)
    assert str(rule) == "val_auc beats champion by 1%"
    holder = holding(champion=candidate("3", {"val_auc": 0.8}))
    ok = judge(rule, candidate(metrics={"val_auc": 0.82}), holder)
    assert ok.passed
    assert ok.reason == "val_auc 0.82 beats champion v3 (0.8) by 2.5% >= 1%"
    assert ok.threshold == 0.808
    low = judge(rule, candidate(metrics={"val_auc": 0.804}), holder)
    assert low.reason == "val_auc 0.804 vs champion v3 (0.8): gain 0.5% < 1%"


def test_beats_relative_against_a_zero_holder():
    rule = metric("gain").beats("champion", by_relative=0.5)
    zero = holding(champion=candidate("3", {"gain": 0.0}))
    assert judge(rule, candidate(metrics={"gain": 0.1}), zero).passed
    assert not judge(rule, candidate(metrics={"gain": 0.0}), zero).passed


def test_beats_lower_is_better_set_on_the_rule_or_on_the_metric():
    holder = holding(champion=CHAMPION)
    on_rule = metric("loss").beats("champion", by=0.01, higher_is_better=False)
    on_metric = metric("loss", higher_is_better=False).beats("champion", by=0.01)
    assert on_rule == on_metric
    assert str(on_rule) == "loss beats champion by 0.01 (lower is better)"
    assert repr(on_rule) == "metric('loss').beats('champion', by=0.01, higher_is_better=False)"
    ok = judge(on_rule, candidate(metrics={"loss": 0.2}), holder)
    assert ok.passed
    assert ok.reason == "loss 0.2 beats champion v3 (0.25) by 0.05 >= 0.01 (lower is better)"
    assert ok.threshold == 0.24
    worse = judge(on_metric, candidate(metrics={"loss": 0.3}), holder)
    assert not worse.passed
    assert worse.reason == "loss 0.3 vs champion v3 (0.25): gain -0.05 < 0.01 (lower is better)"


def test_beats_relative_lower_is_better():
    rule = metric("loss", higher_is_better=False).beats("champion", by_relative=0.1)
    holder = holding(champion=candidate("3", {"loss": 0.5}))
    assert judge(rule, candidate(metrics={"loss": 0.4}), holder).passed
    assert not judge(rule, candidate(metrics={"loss": 0.46}), holder).passed


def test_beats_with_no_holder_passes_by_default_or_fails_when_asked():
    cand = candidate(metrics={"val_auc": 0.9})
    ok = judge(metric("val_auc").beats("champion", by=0.01), cand)
    assert (ok.passed, ok.reason) == (True, "no current champion; passes by default")
    strict = metric("val_auc").beats("champion", by=0.01, if_no_holder="fail")
    failed = judge(strict, cand)
    assert (failed.passed, failed.reason) == (False, "no current champion (if_no_holder='fail')")


def test_beats_against_a_holder_missing_the_metric():
    holder = holding(champion=candidate("3", {"other": 1.0}))
    cand = candidate(metrics={"val_auc": 0.9})
    ok = judge(metric("val_auc").beats("champion"), cand, holder)
    assert (ok.passed, ok.reason) == (True, "champion v3 has no val_auc; passes by default")
    strict = metric("val_auc").beats("champion", if_holder_missing="fail")
    failed = judge(strict, cand, holder)
    assert failed.reason == "champion v3 has no val_auc (if_holder_missing='fail')"
    nan_holder = holding(champion=candidate("3", {"val_auc": math.nan}))
    assert judge(metric("val_auc").beats("champion"), cand, nan_holder).reason == (
        "champion v3 has no usable val_auc (metric 'val_auc' is NaN); passes by default"
    )


def test_the_current_holder_passes_its_own_beats_rule():
    me = candidate("3", {"val_auc": 0.9})
    policy = PromotionPolicy(to="champion", when=[metric("val_auc").beats("champion", by=0.01)])
    decision = policy.evaluate(me, holding(champion=candidate("3", {"val_auc": 0.9})))
    assert decision.promoted
    assert decision.rules[0].reason == "already holds champion"
    assert decision.previous == "3"


def test_holders_is_asked_once_per_alias():
    calls: list[str] = []

    def holders(alias: str) -> Candidate | None:
        calls.append(alias)
        return {"champion": CHAMPION}.get(alias)

    policy = PromotionPolicy(
        to="champion",
        when=[
            metric("val_auc").beats("champion", by=0.001),
            metric("loss", higher_is_better=False).beats("champion"),
            metric("val_auc").beats("challenger"),
        ],
    )
    decision = policy.evaluate(candidate(metrics={"val_auc": 0.95, "loss": 0.1}), holders)
    assert decision.promoted
    assert sorted(calls) == ["challenger", "champion"]


def test_a_failing_holder_lookup_refuses_without_raising():
    def broken(alias: str) -> Candidate | None:
        raise ConnectionError("registry down")

    decision = PromotionPolicy(to="champion", when=[metric("m").beats("champion")]).evaluate(
        candidate(metrics={"m": 1.0}), broken
    )
    assert not decision.promoted
    assert decision.reason == "could not read the current champion: ConnectionError: registry down"
    assert decision.previous is None
    junk = PromotionPolicy(to="champion", when=[metric("m").beats("champion")]).evaluate(
        candidate(metrics={"m": 1.0}), lambda alias: "3"
    )
    assert "not a Candidate" in junk.reason


# --------------------------------------------------------------------------- callables


def test_callable_returning_bool():
    def has_owner(c: Candidate) -> bool:
        return "owner" in c.tags

    ok = judge(has_owner, candidate(tags={"owner": "ana"}))
    assert (ok.rule, ok.passed, ok.reason) == ("has_owner", True, "has_owner passed")
    failed = judge(has_owner, candidate())
    assert (failed.passed, failed.reason) == (False, "has_owner failed")


def test_callable_returning_a_reason():
    def small(c: Candidate) -> tuple[bool, str]:
        size = float(c.params.get("size_mb", "0"))
        return size < 100, f"model is {size:g} MB"

    result = judge(small, candidate(params={"size_mb": "250"}))
    assert (result.passed, result.reason) == (False, "model is 250 MB")


def test_callable_that_raises_or_returns_none_fails_the_rule():
    def boom(c: Candidate) -> bool:
        raise ValueError("no schema")

    raised = judge(boom, candidate())
    assert (raised.passed, raised.reason) == (False, "boom raised ValueError: no schema")

    def forgot(c: Candidate) -> None:
        pass

    assert judge(forgot, candidate()).reason == (
        "forgot returned None, expected a bool or (bool, reason)"
    )


def test_a_broken_custom_rule_refuses_without_raising():
    class Broken(Rule):
        def evaluate(self, candidate, holders):
            raise RuntimeError("bug")

        def __str__(self) -> str:
            return "broken"

    result = judge(Broken(), candidate())
    assert (result.passed, result.reason) == (False, "could not be evaluated: RuntimeError: bug")


# --------------------------------------------------------------------------- git, tags, params


@pytest.mark.parametrize(
    ("tags", "passed", "reason"),
    [
        ({"tracked.git.dirty": "false"}, True, "git tree was clean"),
        ({"tracked.git.dirty": "true"}, False, "git tree was dirty (uncommitted changes)"),
        ({}, False, "no git state recorded"),
        ({"tracked.git.dirty": "maybe"}, False, "unreadable tracked.git.dirty value 'maybe'"),
        ({"tracked.git.dirty": "unknown"}, False, "git state unknown (not recorded in a git tree)"),
    ],
)
def test_require_clean_git(tags, passed, reason):
    decision = PromotionPolicy(to="champion", require_clean_git=True).evaluate(
        candidate(tags=tags), no_holders
    )
    assert decision.promoted is passed
    assert decision.rules[0].rule == "git tree clean"
    assert decision.rules[0].reason == reason


def test_require_tags_and_params_compare_as_strings():
    policy = PromotionPolicy(
        to="champion",
        require_tags={"team": "risk", "owner": ...},
        require_params={"max_depth": 6, "seed": None},
    )
    good = candidate(tags={"team": "risk", "owner": "ana"}, params={"max_depth": "6", "seed": "0"})
    decision = policy.evaluate(good, no_holders)
    assert decision.promoted
    assert [r.reason for r in decision.rules] == [
        "tag team is 'risk'",
        "tag owner is set",
        "param max_depth is '6'",
        "param seed is set",
    ]
    bad = policy.evaluate(candidate(tags={"team": "ops"}, params={"max_depth": "8"}), no_holders)
    assert not bad.promoted
    assert bad.reason == (
        "tag team is 'ops', needs 'risk'; tag 'owner' was not set; "
        "param max_depth is '8', needs '6'; param 'seed' was not set"
    )


# --------------------------------------------------------------------------- decisions


POLICY = PromotionPolicy(
    to="champion",
    when=[
        metric("val_auc") >= 0.80,
        metric("val_auc").beats("champion", by=0.005),
        metric("latency_ms") <= 20,
    ],
    require_clean_git=True,
)


def test_decision_reason_summarises_all_rules():
    good = candidate(
        metrics={"val_auc": 0.912, "latency_ms": 12}, tags={"tracked.git.dirty": "false"}
    )
    decision = POLICY.evaluate(good, holding(champion=CHAMPION))
    assert (decision.model, decision.version, decision.to) == ("churn", "5", "champion")
    assert decision.promoted and not decision.forced
    assert decision.reason == "all 4 rules passed"
    assert decision.previous == "3"
    lines = decision.summary().splitlines()
    assert lines[0] == "churn v5 -> champion: PROMOTED (all 4 rules passed)"
    assert lines[1] == "  previous champion: v3"
    assert lines[2] == "  pass  val_auc >= 0.8: val_auc 0.912 >= 0.8"
    assert len(lines) == 6


def test_decision_reason_joins_failures():
    bad = candidate(metrics={"val_auc": 0.7, "latency_ms": 12})
    decision = POLICY.evaluate(bad, no_holders)
    assert not decision.promoted
    assert decision.reason == "val_auc 0.7 < 0.8 (needs >= 0.8); no git state recorded"
    assert "  FAIL  git tree clean: no git state recorded" in decision.summary().splitlines()


def test_decision_with_one_or_no_rules():
    assert PromotionPolicy(to="staging").evaluate(candidate(), no_holders).reason == (
        "no rules to check"
    )
    one = PromotionPolicy(to="staging", when=[metric("m") > 0]).evaluate(
        candidate(metrics={"m": 1}), no_holders
    )
    assert one.reason == "1 rule passed"


def test_decision_json_is_strict_and_round_trips_with_nan():
    decision = POLICY.evaluate(candidate(metrics={"val_auc": math.nan}), no_holders)
    text = decision.to_json()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert Decision.from_dict(data) == decision


def test_decision_from_dict_rejects_missing_fields():
    with pytest.raises(PolicyError, match="missing 'model'"):
        Decision.from_dict({"version": "1"})


def test_evaluate_policies_keeps_order_and_independence():
    challenger = PromotionPolicy(to="challenger", when=[metric("val_auc") >= 0.7])
    champion = PromotionPolicy(to="champion", when=[metric("val_auc").beats("champion", by=0.1)])
    decisions = evaluate_policies(
        [challenger, champion], candidate(metrics={"val_auc": 0.95}), holding(champion=CHAMPION)
    )
    assert [(d.to, d.promoted) for d in decisions] == [("challenger", True), ("champion", False)]


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
any_float = st.floats(allow_nan=True, allow_infinity=True)
metric_dicts = st.dictionaries(st.text(max_size=8), any_float, max_size=6)


@FAST
@given(metrics=metric_dicts, threshold=finite, holder_metrics=metric_dicts)
def test_decision_round_trips_through_json(metrics, threshold, holder_metrics):
    names = [*metrics, "absent"]
    policy = PromotionPolicy(
        to="champion",
        when=[metric(n or "x") >= threshold for n in names]
        + [metric(n or "x").beats("champion", by_relative=0.01) for n in names],
    )
    holder = candidate("2", holder_metrics)
    decision = policy.evaluate(candidate(metrics=metrics), holding(champion=holder))
    restored = Decision.from_dict(json.loads(decision.to_json()))
    assert restored == decision
    assert restored.to_json() == decision.to_json()


# --------------------------------------------------------------------------- properties

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@FAST
@given(value=finite, threshold=finite, op=st.sampled_from(sorted(OPS)))
def test_threshold_passes_iff_the_comparison_holds(value, threshold, op):
    rule = OPS[op](metric("m"), threshold)
    assert isinstance(rule, Threshold)
    result = judge(rule, candidate(metrics={"m": value}))
    assert result.passed is OPS[op](value, threshold)


@FAST
@given(metrics=metric_dicts, holder_metrics=metric_dicts, key=st.text(max_size=8))
def test_evaluate_never_raises_on_arbitrary_metrics(metrics, holder_metrics, key):
    name = key or "m"
    policy = PromotionPolicy(
        to="champion",
        when=[
            metric(name) >= 0.5,
            metric(name) < 0.5,
            metric(name).between(-1, 1),
            metric(name).beats("champion", by=0.01),
            metric(name, higher_is_better=False).beats("champion", by_relative=0.1),
            lambda c: (c.metrics.get(name, 0) > 0, "positive"),
        ],
        require_clean_git=True,
    )
    decision = policy.evaluate(
        candidate(metrics=metrics), holding(champion=candidate("1", holder_metrics))
    )
    assert len(decision.rules) == 7
    assert not any("could not be evaluated" in r.reason for r in decision.rules)
    json.loads(decision.to_json())


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PromotionPolicy(to="latest"), "to='latest'"),
        (lambda: PromotionPolicy(to="Latest"), "to='Latest'"),
        (lambda: PromotionPolicy(to="v3"), "to='v3'"),
        (lambda: PromotionPolicy(to="1st"), "to='1st'"),
        (lambda: PromotionPolicy(to="my alias"), "to='my alias'"),
        (lambda: PromotionPolicy(to=""), "to=''"),
        (lambda: PromotionPolicy(to="a" * 256), "to='aaa"),
        (lambda: metric("m") >= "0.8", "threshold='0.8'"),
        (lambda: metric("m") <= True, "threshold=True"),
        (lambda: metric("m") > math.nan, "threshold=nan"),
        (lambda: metric("m").between(1, 0), "between=(1, 0)"),
        (lambda: metric("m").beats("champion", by=-0.1), "by=-0.1"),
        (lambda: metric("m").beats("champion", by_relative=-1), "by_relative=-1"),
        (lambda: metric("m").beats("champion", by=1, by_relative=0.1), "by_relative=0.1"),
        (lambda: metric("m").beats("champion", if_no_holder="skip"), "if_no_holder='skip'"),
        (lambda: metric("m").beats("champion", if_holder_missing=0), "if_holder_missing=0"),
        (lambda: metric("m").beats("latest"), "beats alias='latest'"),
        (lambda: metric(""), "metric name=''"),
        (lambda: PromotionPolicy(to="c", when=[metric("m") == 0.8]), "when[0]=False"),
        (lambda: PromotionPolicy(to="c", when=[metric("m")]), "when[0]=metric('m')"),
        (lambda: PromotionPolicy(to="c", when=[0.8]), "when[0]=0.8"),
        (lambda: PromotionPolicy(to="c", when="m >= 0.8"), "when='m >= 0.8'"),
        (lambda: PromotionPolicy(to="c", require_tags=["team"]), "require_tags=['team']"),
        (lambda: PromotionPolicy(to="c", require_params={1: "x"}), "require_params=1"),
        (lambda: PromotionPolicy(to="c", stage="Prod"), "stage='Prod'"),
        (lambda: PromotionPolicy(to="c", when=[0.7 <= metric("m") <= 0.9]), "between"),
    ],
)
def test_malformed_policies_raise_policy_error_naming_field_and_value(build, message):
    with pytest.raises(PolicyError) as info:
        build()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_valid_aliases_and_stages():
    assert PromotionPolicy(to="_shadow-2").to == "_shadow-2"
    assert PromotionPolicy(to="v2beta").to == "v2beta"  # MLflow only reserves v<digits>
    assert PromotionPolicy(to="champion", stage="production").stage == "Production"


def test_metric_equality_is_plain_dataclass_equality():
    assert metric("m") == Metric("m")
    assert metric("m") != metric("m", higher_is_better=False)
    assert (metric("m") == 0.8) is False
    assert len({metric("m"), metric("m")}) == 1


def test_policy_repr_reads_like_the_code():
    policy = PromotionPolicy(
        to="champion",
        when=[
            metric("val_auc") >= 0.8,
            metric("val_auc").beats("champion", by=0.005),
            metric("loss", higher_is_better=False).beats("champion", by_relative=0.01),
            metric("latency_ms").between(0, 20),
        ],
        require_clean_git=True,
        require_tags={"team": "risk", "owner": ...},
        stage="Production",
    )
    text = repr(policy)
    assert text == (
        "PromotionPolicy(to='champion', when=[metric('val_auc') >= 0.8, "
        "metric('val_auc').beats('champion', by=0.005), "
        "metric('loss').beats('champion', by_relative=0.01, higher_is_better=False), "
        "metric('latency_ms').between(0, 20)], require_clean_git=True, "
        "require_tags={'team': 'risk', 'owner': ...}, stage='Production')"
    )
    rebuilt = eval(text, {"PromotionPolicy": PromotionPolicy, "metric": metric})
    assert repr(rebuilt) == text
    assert rebuilt.rules == policy.rules
    assert [type(r) for r in policy.rules] == [
        Threshold,
        Beats,
        Beats,
        Between,
        CleanGit,
        RequiredValue,
        RequiredValue,
    ]


def test_callables_and_single_rules_are_accepted_as_when():
    def fine(c: Candidate) -> bool:
        return True

    policy = PromotionPolicy(to="champion", when=[fine])
    assert policy.rules == (Check(fine),)
    assert PromotionPolicy(to="champion", when=metric("m") > 1).rules == (metric("m") > 1,)


# --------------------------------------------------------------------------- unreadable holders


def test_finding1_a_failed_holder_read_refuses_a_policy_without_a_beats_rule():
    def broken(alias: str) -> Candidate | None:
        raise StoreUnavailableError("http://registry", "answered 503")

    decision = PromotionPolicy(to="champion", when=[metric("m") >= 0.5]).evaluate(
        candidate(metrics={"m": 1.0}), broken
    )

    assert not decision.promoted and decision.previous is None
    assert [r.passed for r in decision.rules] == [True, False]
    assert decision.rules[1].rule == "read the current champion"
    assert decision.reason.startswith("could not read the current champion: tracked: tracking")


def test_a_failed_holder_read_is_said_once_when_a_beats_rule_reports_it():
    def broken(alias: str) -> Candidate | None:
        raise StoreUnavailableError("http://registry", "answered 503")

    decision = PromotionPolicy(to="champion", when=[metric("m").beats("champion")]).evaluate(
        candidate(metrics={"m": 1.0}), broken
    )

    assert len(decision.rules) == 1 and decision.reason.count("could not read") == 1


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("spelling", ["Production", "PRODUCTION", "production"])
def test_aliases_are_lower_case_wherever_they_are_named(spelling):
    assert PromotionPolicy(to=spelling).to == "production"
    assert metric("m").beats(spelling).alias == "production"
    assert normalize_alias(spelling) == "production"


def test_an_unchanged_decision_reads_as_such():
    decision = Decision("m", "3", "champion", True, (), "v3 already holds champion", unchanged=True)
    assert decision.summary().startswith("m v3 -> champion: UNCHANGED")
    assert Decision.from_dict(json.loads(decision.to_json())) == decision


# --------------------------------------------------------------------------- policies as data

NUMBERS = st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([math.inf, -math.inf, 0.0])
MARGINS = st.floats(0, 10, allow_nan=False)
METRICS = st.sampled_from(["acc", "loss", "lat"])
KEYS = st.sampled_from(["team", "owner", "lr"])
VALUES = st.none() | st.sampled_from(["risk", "0.1", "a b"])


@st.composite
def thresholds(draw) -> Rule:
    op = draw(st.sampled_from([operator.ge, operator.gt, operator.le, operator.lt]))
    return op(metric(draw(METRICS)), draw(NUMBERS))


@st.composite
def betweens(draw) -> Rule:
    lo, hi = sorted([draw(NUMBERS), draw(NUMBERS)])
    return metric(draw(METRICS)).between(lo, hi)


@st.composite
def beats_rules(draw) -> Rule:
    margin = draw(st.sampled_from(["none", "by", "by_relative"]))
    kwargs = {} if margin == "none" else {margin: draw(MARGINS)}
    return metric(draw(METRICS)).beats(
        draw(st.sampled_from(["champion", "Challenger"])),
        higher_is_better=draw(st.none() | st.booleans()),
        if_no_holder=draw(st.sampled_from(["pass", "fail"])),
        if_holder_missing=draw(st.sampled_from(["pass", "fail"])),
        **kwargs,
    )


@st.composite
def policies(draw) -> PromotionPolicy:
    rules = draw(st.lists(thresholds() | betweens() | beats_rules(), max_size=5))
    return PromotionPolicy(
        to=draw(st.sampled_from(["champion", "challenger", "Staging_2"])),
        when=rules,
        require_clean_git=draw(st.booleans()),
        require_tags=draw(st.dictionaries(KEYS, VALUES, max_size=2)),
        require_params=draw(st.dictionaries(KEYS, VALUES, max_size=2)),
        stage=draw(st.sampled_from([None, "Staging", "production"])),
        name=draw(st.none() | st.just("prod")),
    )


def candidates(version: str) -> st.SearchStrategy[Candidate]:
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    metric_values = finite | st.sampled_from([math.nan, math.inf, "x"])
    return st.builds(
        Candidate,
        name=st.just("m"),
        version=st.just(version),
        metrics=st.dictionaries(METRICS, metric_values, max_size=3),
        params=st.dictionaries(KEYS, st.sampled_from(["risk", "0.1"]), max_size=2),
        tags=st.dictionaries(
            KEYS | st.just("tracked.git.dirty"),
            st.sampled_from(["risk", "true", "false", "unknown"]),
            max_size=3,
        ),
    )


def _outcome(decision: Decision) -> tuple:
    return (decision.promoted, decision.reason, decision.previous, decision.rules)


@settings(max_examples=150, deadline=None)
@given(policies(), candidates("5"), st.none() | candidates("2"), st.none() | candidates("3"))
def test_policies_round_trip_as_data(policy, cand, champion, challenger):
    data = json.loads(json.dumps(policy.to_dict(), allow_nan=False))
    restored = PromotionPolicy.from_dict(data)
    holders = holding(
        **{k: v for k, v in [("champion", champion), ("challenger", challenger)] if v}
    )

    assert _outcome(restored.evaluate(cand, holders)) == _outcome(policy.evaluate(cand, holders))
    assert restored.to_dict() == policy.to_dict() and repr(restored) == repr(policy)
    assert data["format"] == 1


def test_a_custom_check_comes_back_from_data_as_a_rule_that_fails_and_says_why():
    def fast_enough(c: Candidate) -> bool:
        return True

    policy = PromotionPolicy(to="champion", when=[fast_enough, metric("m") >= 0])
    data = policy.to_dict()
    assert data["when"][0] == {
        "kind": "check",
        "name": "test_a_custom_check_comes_back_from_data_as_a_rule_that_fails_and_says_why"
        ".<locals>.fast_enough",
    }

    decision = PromotionPolicy.from_dict(data).evaluate(candidate(metrics={"m": 1}), no_holders)

    assert not decision.promoted
    assert decision.rules[0].reason == (
        f"custom check {data['when'][0]['name']!r} cannot be evaluated when replayed; declare the "
        "policy in [tool.tracked.policies] or promote by hand"
    )
    assert decision.rules[1].passed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": 2, "to": "champion"}, "format=2"),
        ({"to": "champion"}, "format=None"),
        ({"format": 1}, "to=None: missing"),
        ({"format": 1, "to": "c", "when": [{"kind": "magic"}]}, "kind='magic'"),
        (
            {"format": 1, "to": "c", "when": [{"kind": "threshold", "metric": "m", "op": "=="}]},
            "op",
        ),
        ({"format": 1, "to": "c", "when": "m > 1"}, "when='m > 1'"),
        ([], "policy=[]"),
    ],
)
def test_unreadable_policy_data_raises_policy_error_naming_the_field(data, message):
    with pytest.raises(PolicyError, match="cannot read promotion policy") as info:
        PromotionPolicy.from_dict(data)
    assert message in str(info.value)
