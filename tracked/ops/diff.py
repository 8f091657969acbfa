"""`tracked diff A B`: what changed between two versions or runs, and which way each metric moved.

    tracked diff churn/5 churn/7       # versions (NAME/VERSION, NAME@ALIAS; B may be "7")
    tracked diff 3f2a...e1 9b0c...44   # runs (full run ids)

Params added, removed and changed; each data input's fingerprint, same or changed; the commits
(with `git log --oneline A..B` when both are in the local repository); every metric's delta,
marked better or worse by its direction (tracked/ranking.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from tracked import tags as T
from tracked.ops.base import Param, Result, open_store
from tracked.ops.models import VersionInfo, configured_policy
from tracked.ops.runs import get_run, run_inputs
from tracked.ops.show import RUN_ID, parse_ref, resolve_version
from tracked.ranking import KeyMetric, choose_key_metric, direction

if TYPE_CHECKING:
    from tracked.store import Store

__all__ = ["Diff", "Side", "diff"]

GIT_LOG_LIMIT = 50


@dataclass(frozen=True)
class Side(Result):
    """One side of a diff: a version (with its run) or a run."""

    ref: str
    kind: str  # "version" or "run"
    model: str | None
    version: str | None
    run_id: str | None
    git_commit: str | None
    git_dirty: bool | None
    flavor: str | None
    model_class: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}" if self.kind == "version" else f"run {self.run_id}"

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in ("params", "metrics", "data", "tags"):
            out.pop(name)
        return out


@dataclass(frozen=True)
class Change(Result):
    """One param or data input: `change` is added, removed, changed or same."""

    name: str
    a: str | None
    b: str | None
    change: str


@dataclass(frozen=True)
class MetricDelta(Result):
    """One metric: `delta` = b - a; `verdict` better, worse, same, or only in a / only in b."""

    name: str
    a: float | None
    b: float | None
    delta: float | None
    higher_is_better: bool
    direction_by: str
    verdict: str


@dataclass(frozen=True)
class CodeChange(Result):
    a: str | None
    b: str | None
    same: bool | None  # None: a commit is unknown
    a_dirty: bool | None
    b_dirty: bool | None
    log: list[str] | None  # `git log --oneline a..b`, when both commits are in this repository
    log_note: str


@dataclass(frozen=True)
class Diff(Result):
    a: Side
    b: Side
    key_metric: KeyMetric | None
    params: list[Change]  # only what differs
    unchanged_params: int
    data: list[Change]  # every input of either side
    code: CodeChange
    metrics: list[MetricDelta]  # the key metric first, then by name
    model: Change | None  # flavor / estimator class, when it differs


def _side(store: Store, ref: str, other: Side | None) -> Side:
    text = ref.strip()
    if other is not None and other.kind == "version" and text.isdigit():
        text = f"{other.model}/{text}"  # `diff churn/5 7`: the same model's version 7
    if RUN_ID.fullmatch(text):
        run = get_run(store, text, missing_ok=True)
        if run is not None:
            tags = dict(run.data.tags)
            return Side(
                ref=ref,
                kind="run",
                model=tags.get(T.MODEL_NAME),
                version=tags.get(T.MODEL_VERSION),
                run_id=run.info.run_id,
                git_commit=T.git_commit(tags),
                git_dirty=T.git_dirty(tags),
                flavor=tags.get(T.model_tag("model", "flavor")),
                model_class=tags.get(T.MODEL_CLASS),
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                data=run_inputs(run),
                tags=tags,
            )
    found = resolve_version(store, text)
    version_tags = dict(found.tags or {})
    run = get_run(store, found.run_id, missing_ok=True) if found.run_id else None
    run_tags = dict(run.data.tags) if run is not None else {}
    info = VersionInfo.of(found)
    return Side(
        ref=ref,
        kind="version",
        model=found.name,
        version=str(found.version),
        run_id=found.run_id or None,
        git_commit=info.git_commit or T.git_commit(run_tags),
        git_dirty=info.git_dirty if info.git_dirty is not None else T.git_dirty(run_tags),
        flavor=info.flavor,
        model_class=info.model_class or run_tags.get(T.MODEL_CLASS),
        params=dict(run.data.params) if run is not None else {},
        metrics={**(dict(run.data.metrics) if run is not None else {}), **info.metrics},
        data={**info.data, **(run_inputs(run) if run is not None else {})},
        tags={**run_tags, **version_tags},
    )


def _changes(a: dict[str, str], b: dict[str, str], *, keep_same: bool) -> list[Change]:
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            out.append(Change(name, a[name], None, "removed"))
        elif name not in a:
            out.append(Change(name, None, b[name], "added"))
        elif a[name] != b[name]:
            out.append(Change(name, a[name], b[name], "changed"))
        elif keep_same:
            out.append(Change(name, a[name], b[name], "same"))
    return out


def _metric(name: str, a: Side, b: Side, policy: Any, override: KeyMetric | None) -> MetricDelta:
    if override is not None and override.name == name:
        higher, why = override.higher_is_better, override.direction_by
    else:
        higher, why = direction(name, policy=policy, policy_label="policy")
    va, vb = a.metrics.get(name), b.metrics.get(name)
    if va is None or vb is None:
        verdict = "only in a" if vb is None else "only in b"
        return MetricDelta(name, va, vb, None, higher, why, verdict)
    delta = vb - va
    verdict = "same" if delta == 0 else "better" if (delta > 0) == higher else "worse"
    return MetricDelta(name, va, vb, delta, higher, why, verdict)


def _git_log(a: str | None, b: str | None) -> tuple[list[str] | None, str]:
    import shutil
    import subprocess

    if not a or not b:
        return None, "a commit is unknown"
    if a == b:
        return [], "same commit"
    git = shutil.which("git")
    if git is None:
        return None, "git is not installed"

    def run(*args: str) -> Any:
        return subprocess.run([git, *args], capture_output=True, text=True, timeout=20)

    try:
        missing = [c for c in (a, b) if run("cat-file", "-e", f"{c}^{{commit}}").returncode]
        if missing:
            return None, f"commit {missing[0][:12]} is not in this repository"
        done = run("log", "--oneline", f"--max-count={GIT_LOG_LIMIT}", f"{a}..{b}")
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"git log failed ({exc})"
    if done.returncode:
        return None, f"git log failed ({done.stderr.strip()[:200]})"
    lines = done.stdout.splitlines()
    if not lines:
        return [], f"{b[:12]} is not ahead of {a[:12]} (see git log {b[:12]}..{a[:12]})"
    more = " (the newest shown)" if len(lines) == GIT_LOG_LIMIT else ""
    return lines, f"{len(lines)} commits from a to b{more}"


def diff(
    a: Annotated[str, Param("the older side: NAME/VERSION, NAME@ALIAS or a run id")],
    b: Annotated[str, Param("the newer side: NAME/VERSION, NAME@ALIAS, a run id, or VERSION")],
    *,
    tracking_uri: str | None = None,
) -> Diff:
    """What changed from A to B: params, data fingerprints, code (git), metric deltas."""
    for ref in (a, b):
        if not RUN_ID.fullmatch(ref.strip()) and not (ref is b and ref.strip().isdigit()):
            parse_ref(ref)  # a malformed reference is an input error, store or no store
    with open_store(tracking_uri) as (settings, store):
        left = _side(store, a, None)
        right = _side(store, b, left)
        policy = configured_policy(settings, settings.champion_alias)
    names = set(left.metrics) | set(right.metrics)
    key = choose_key_metric(
        tags=right.tags,
        policy=policy,
        alias=settings.champion_alias,
        setting=settings.key_metric,
        available=names,
    )
    order = sorted(names, key=lambda n: (key is None or n != key.name, n))
    metrics = [_metric(n, left, right, policy, key) for n in order]
    params = _changes(left.params, right.params, keep_same=False)
    unchanged = len(set(left.params) & set(right.params)) - sum(
        1 for c in params if c.change == "changed"
    )
    log, note = _git_log(left.git_commit, right.git_commit)
    same = (
        None if not (left.git_commit and right.git_commit) else left.git_commit == right.git_commit
    )
    code = CodeChange(
        left.git_commit, right.git_commit, same, left.git_dirty, right.git_dirty, log, note
    )
    model = None
    kind_a = left.model_class or left.flavor
    kind_b = right.model_class or right.flavor
    if kind_a != kind_b:
        model = Change("model", kind_a, kind_b, "changed")
    data = _changes(left.data, right.data, keep_same=True)
    return Diff(left, right, key, params, unchanged, data, code, metrics, model)
