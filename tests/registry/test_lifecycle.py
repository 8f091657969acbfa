"""Promotion, rollback, comparison and retention against a real MLflow store."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import tracked
from tracked import PromotionPolicy, metric
from tracked.errors import AliasNotFoundError, ModelNotFoundError
from tracked.registry import lifecycle


class Scorer:
    """A tiny model: logged through the generic pyfunc flavor."""

    def predict(self, X):
        return np.zeros(len(X))


def train_version(
    model_name: str, score: float, *, tags=None, promote=None, **extra
) -> tracked.TrackedRun:
    """A real tracked run that registers a version with metric `score`."""
    with tracked.run("train", model_name=model_name, tags=tags, promote=promote) as run:
        run.log_metrics({"score": score, **extra})
        run.log_model(Scorer())
    assert run.model_version is not None
    return run


def holder(store, name: str, alias: str = "champion") -> str | None:
    try:
        return str(store.client.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def beats_policy(by: float = 0.0, **kwargs) -> PromotionPolicy:
    return PromotionPolicy(
        to="champion",
        when=[metric("score") >= 0.5, metric("score").beats("champion", by=by)],
        **kwargs,
    )


def test_first_promotion_passes_beats_without_holder(store) -> None:
    run = train_version("m-first", 0.7)
    decision = tracked.promote("m-first", run.model_version, policy=beats_policy())
    assert decision.promoted and decision.previous is None
    beats = next(r for r in decision.rules if "beats" in r.rule)
    assert beats.passed and "no" in beats.reason.lower() and "champion" in beats.reason
    assert holder(store, "m-first") == "1"


def test_threshold_and_beats_fail_with_reasons_recorded(store) -> None:
    train_version("m-rules", 0.8)
    tracked.promote("m-rules", 1)
    run = train_version("m-rules", 0.802)
    decision = tracked.promote("m-rules", 2, policy=beats_policy(by=0.005))
    assert not decision.promoted
    failed = [r for r in decision.rules if not r.passed]
    assert len(failed) == 1 and failed[0].observed == pytest.approx(0.802)
    assert holder(store, "m-rules") == "1"
    version = store.client.get_model_version("m-rules", "2")
    assert version.tags["tracked.promotion.decision"] == "rejected"
    assert "champion" in version.tags["tracked.promotion.reason"]
    path = store.client.download_artifacts(run.run_id, "tracked/promotion/champion-v2.json")
    with open(path) as fh:
        recorded = tracked.Decision.from_dict(json.load(fh))
    assert recorded.promoted is False and recorded.rules == decision.rules

    low = train_version("m-rules", 0.3)
    decision = tracked.promote("m-rules", low.model_version, policy=beats_policy())
    assert [r.passed for r in decision.rules] == [False, False]
    assert "0.3" in decision.reason


def test_clean_git_tags_params_and_callable_rules(store) -> None:
    run = train_version("m-kinds", 0.9, tags={"team": "risk"})
    dirty = store.run(run.run_id).data.tags.get("tracked.git.dirty")

    def fast_enough(candidate):
        return candidate.metrics.get("score", 0) > 0.5, "score above 0.5"

    policy = PromotionPolicy(
        to="challenger",
        when=[fast_enough, lambda c: False],
        require_clean_git=True,
        require_tags={"team": "risk", "owner": None},
    )
    decision = tracked.promote("m-kinds", 1, policy=policy)
    results = {r.rule: r for r in decision.rules}
    assert len(results) == 5
    passed = [r.passed for r in decision.rules]
    assert passed[:2] == [True, False]
    clean = next(r for r in decision.rules if "git" in r.rule)
    assert clean.passed is (dirty == "false")
    owner = next(r for r in decision.rules if "owner" in r.rule)
    assert not owner.passed
    team = next(r for r in decision.rules if "team" in r.rule)
    assert team.passed
    assert not decision.promoted and holder(store, "m-kinds", "challenger") is None


def test_ordered_policies_on_the_decorator(store) -> None:
    policies = [
        PromotionPolicy(to="challenger", when=[metric("score") >= 0.5]),
        PromotionPolicy(to="champion", when=[metric("score") >= 0.9]),
    ]

    @tracked.tracked_training(model_name="m-tiers", promote=policies)
    def train(score):
        tracked.current_run().log_model(Scorer())
        return {"score": score}

    train(0.7)
    run = tracked.last_run()
    assert [d.to for d in run.decisions] == ["challenger", "champion"]
    assert [d.promoted for d in run.decisions] == [True, False]
    assert run.promotion is run.decisions[-1]
    assert holder(store, "m-tiers", "challenger") == "1"
    assert holder(store, "m-tiers", "champion") is None
    train(0.95)
    assert holder(store, "m-tiers", "champion") == "2"


def test_force_records_that_it_was_forced(store) -> None:
    train_version("m-force", 0.1)
    decision = tracked.promote("m-force", 1, policy=beats_policy(), force=True)
    assert decision.promoted and decision.forced
    assert holder(store, "m-force") == "1"
    tags = store.client.get_model_version("m-force", "1").tags
    assert tags["tracked.promotion.decision"] == "forced"


def test_rollback_twice_and_after_reopening_the_client(store) -> None:
    for score in (0.6, 0.7, 0.8):
        run = train_version("m-roll", score)
        tracked.promote("m-roll", run.model_version, policy=beats_policy())
    assert holder(store, "m-roll") == "3"
    assert tracked.rollback("m-roll") == "2"
    assert tracked.rollback("m-roll") == "1"
    with pytest.raises(tracked.PolicyError, match="no earlier holder"):
        tracked.rollback("m-roll")
    assert holder(store, "m-roll") == "1"
    tracked.promote("m-roll", 3)
    from tracked.store import forget_stores

    forget_stores()  # fresh stores and clients, as after a process restart
    assert lifecycle.alias_history("m-roll") == ["1", "3"]
    assert tracked.rollback("m-roll") == "1"


def test_stage_mode_archives_previous(store) -> None:
    policy = PromotionPolicy(to="champion", when=[metric("score") >= 0], stage="Production")
    for score in (0.5, 0.6):
        run = train_version("m-stage", score)
        tracked.promote("m-stage", run.model_version, policy=policy)
    v1 = store.client.get_model_version("m-stage", "1")
    v2 = store.client.get_model_version("m-stage", "2")
    assert (v1.current_stage, v2.current_stage) == ("Archived", "Production")


def test_compare_best_and_listing(store) -> None:
    for score in (0.6, 0.9, 0.7):
        train_version("m-cmp", score, loss=1 - score)
    rows = tracked.compare("m-cmp", metric="score")
    assert [r.version for r in rows] == ["2", "3", "1"]
    assert rows[0].metrics["score"] == 0.9 and rows[0].data == {}
    by_loss = tracked.compare("m-cmp", "loss", higher_is_better=False)
    assert by_loss[0].version == "2"
    assert [r.version for r in tracked.compare("m-cmp", "score", versions=[1, 3])] == ["3", "1"]
    assert tracked.best_version("m-cmp", "score").version == "2"
    assert tracked.best_version("m-cmp", "absent") is None
    with pytest.raises(ModelNotFoundError):
        tracked.compare("m-cmp", "score", versions=[7])
    with pytest.raises(ModelNotFoundError):
        tracked.compare("no-such-model", "score")


def test_gc_keeps_aliased_and_history(store) -> None:
    for score in (0.5, 0.6, 0.55, 0.4, 0.3):
        run = train_version("m-gc", score)
        if score in (0.5, 0.6):
            tracked.promote("m-gc", run.model_version)
    report = tracked.gc("m-gc", keep_last=1)
    assert report.dry_run and report.kept == ["5"]
    assert sorted(report.protected) == ["1", "2"]
    assert sorted(report.deleted) == ["3", "4"]
    assert {str(v.version) for v in store.client.search_model_versions("name = 'm-gc'")} == {
        "1",
        "2",
        "3",
        "4",
        "5",
    }
    tracked.gc("m-gc", keep_last=1, dry_run=False)
    left = {str(v.version) for v in store.client.search_model_versions("name = 'm-gc'")}
    assert left == {"1", "2", "5"}


class RegistryMachine(RuleBasedStateMachine):
    """Any sequence of register/promote/rollback/gc keeps aliases on existing versions and the
    rollback history consistent with the alias."""

    store = None

    def __init__(self) -> None:
        super().__init__()
        self.name = f"prop-{uuid.uuid4().hex[:10]}"
        self.registered = 0

    def _client(self):
        return type(self).store.client

    @rule(score=st.floats(0, 1))
    def register(self, score: float) -> None:
        from tracked.registry.versions import register_version

        client = self._client()
        exp = client.get_experiment_by_name(type(self).store.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(type(self).store.experiment)
        run = client.create_run(exp_id)
        client.set_terminated(run.info.run_id)
        register_version(
            client,
            self.name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={"tracked.metric.score": repr(score)},
        )
        self.registered += 1

    @precondition(lambda self: self.registered > 0)
    @rule(data=st.data(), force=st.booleans())
    def promote(self, data, force: bool) -> None:
        versions = [
            str(v.version) for v in self._client().search_model_versions(f"name = '{self.name}'")
        ]
        if not versions:  # gc(keep=0) may have deleted every unprotected version
            return
        version = data.draw(st.sampled_from(sorted(versions)))
        tracked.promote(self.name, version, policy=beats_policy(), force=force)

    @precondition(lambda self: self.registered > 0)
    @rule()
    def rollback(self) -> None:
        with contextlib.suppress(AliasNotFoundError, tracked.PolicyError):
            tracked.rollback(self.name)

    @precondition(lambda self: self.registered > 0)
    @rule(keep=st.integers(0, 3))
    def gc(self, keep: int) -> None:
        tracked.gc(self.name, keep_last=keep, dry_run=False)

    @invariant()
    def aliases_point_at_existing_versions(self) -> None:
        if not self.registered:
            return
        client = self._client()
        model = client.get_registered_model(self.name)
        existing = {str(v.version) for v in client.search_model_versions(f"name = '{self.name}'")}
        for alias, version in (model.aliases or {}).items():
            assert str(version) in existing
            history = lifecycle.alias_history(self.name, alias)
            assert history and history[-1] == str(version)
            assert set(history) <= existing  # gc never deletes a version rollback may need


def test_any_sequence_keeps_registry_consistent(store) -> None:
    RegistryMachine.store = store
    run_machine = RegistryMachine.TestCase
    run_machine.settings = settings(
        max_examples=8,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    run_machine().runTest()


def _promote_worker(uri: str, experiment: str, name: str, score: float, barrier) -> dict:
    # Eight processes on two cores against one server worker: under CI's load one answer can
    # take longer than the default 30 s bound. This test pins the decisions, not the latency.
    tracked.configure(tracking_uri=uri, experiment=experiment, project="proj", http_timeout=120)
    with tracked.run("train", model_name=name, register=True) as run:
        run.log_metrics({"score": score})
        run.log_model(Scorer())
    barrier.wait(timeout=120)  # all registered: now they all promote at once (or all fail)
    decision = tracked.promote(name, run.model_version, policy=beats_policy())
    return {
        "version": run.model_version,
        "score": score,
        "promoted": decision.promoted,
        "previous": decision.previous,
    }


@pytest.mark.slow
@pytest.mark.timeout(400)
# Every call the promoters make goes through the store door (bounded), so on the server store
# (one gunicorn worker) a loaded machine makes this slow, never hung.
def test_concurrent_promotions_end_on_the_best(store) -> None:
    name = "m-race"
    scores = [0.61, 0.93, 0.72, 0.88, 0.55, 0.97, 0.66, 0.81]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(scores))
        with ctx.Pool(len(scores)) as pool:
            results = pool.starmap_async(
                _promote_worker, [(store.uri, store.experiment, name, s, barrier) for s in scores]
            ).get(timeout=240)
    by_version = {r["version"]: r for r in results}
    best = max(results, key=lambda r: r["score"])
    assert holder(store, name) == best["version"]
    assert best["promoted"]
    history = lifecycle.alias_history(name)
    assert history[-1] == best["version"]
    # Each promotion beat the holder it saw, so the history only ever improves.
    history_scores = [by_version[v]["score"] for v in history]
    assert history_scores == sorted(history_scores)
    for r in results:
        tags = store.client.get_model_version(name, r["version"]).tags
        assert tags["tracked.promotion.decision"] == ("promoted" if r["promoted"] else "rejected")
        if r["promoted"]:
            assert r["version"] in history
        elif r["previous"] is not None:
            assert by_version[r["previous"]]["score"] >= r["score"]
    assert not [
        m for m in store.client.search_registered_models() if m.name.endswith(".tracked-lock")
    ]


def test_promoting_the_holder_again_changes_nothing_and_says_so(store) -> None:
    train_version("m-again", 0.7)
    tracked.promote("m-again", 1)

    decision = tracked.promote("m-again", 1, policy=beats_policy(by=0.5))

    assert decision.promoted and decision.unchanged and decision.rules == ()
    assert decision.previous is None  # not itself as its own predecessor
    assert "already holds champion" in decision.reason
    assert lifecycle.alias_history("m-again") == ["1"]
    tags = store.client.get_model_version("m-again", "1").tags
    assert tags["tracked.promotion.decision"] == "unchanged"
    assert tags["tracked.promotion.champion.decision"] == "unchanged"


def test_alias_spellings_name_one_alias(store) -> None:
    for score in (0.6, 0.7):
        train_version("m-case", score)
    tracked.promote("m-case", 1, to="Production")
    tracked.promote("m-case", 2, to="PRODUCTION")

    aliases = store.client.get_registered_model("m-case").aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"production": "2"}
    assert lifecycle.alias_history("m-case", "Production") == ["1", "2"]
    assert tracked.lineage("m-case@Production").version == "2"
    assert tracked.rollback("m-case", "Production") == "1"
    with pytest.raises(tracked.PolicyError, match="reserved by MLflow"):
        tracked.promote("m-case", 1, to="Latest")


def test_promote_moves_the_legacy_stage_in_any_spelling(store) -> None:
    for score in (0.5, 0.6):
        run = train_version("m-stage-case", score)
        tracked.promote("m-stage-case", run.model_version, stage="production")
    stages = [store.client.get_model_version("m-stage-case", v).current_stage for v in "12"]
    assert stages == ["Archived", "Production"]
