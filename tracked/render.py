"""What each command prints: one renderer per command over tracked/tables.py's `Output`.

Tables rank nothing by accident: every ranking table (models, compare, best) says which metric
ranks and which way is better, and why. Run ids are printed whole; version columns too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tracked.tables import Column, Output, Table

__all__ = ["RENDERERS"]


def _metric_columns(names: list[str], key: str | None, start: int = 5) -> list[Column]:
    """One column per metric: the key metric first (kept longest), the rest by name."""
    ordered = sorted(names, key=lambda n: (n != key, n))
    return [
        Column(n, priority=2 if n == key else start, justify="right", group="metric")
        for n in ordered
    ]


def _kind(flavor: str | None, model_class: str | None) -> str:
    """The estimator's class name (its last part), else the flavor."""
    if model_class:
        return model_class.rsplit(".", 1)[-1]
    return flavor or ""


def _dirty(value: bool | None) -> str:
    return {True: "dirty", False: "clean", None: ""}[value]


def _key_text(key: dict[str, Any] | None) -> str:
    if not key:
        return ""
    return f"{key['name']}, {_direction(key['higher_is_better'])} (chosen by {key['chosen_by']})"


def _direction(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


# --------------------------------------------------------------------------- registry reads


def render_models(result: Any, out: Output) -> None:
    data = result.to_dict()
    if not data["models"]:
        out.line("no registered models yet")
        return
    alias = data["models"][0]["champion_alias"]
    table = Table(
        [
            Column("model", priority=0),
            Column("versions", priority=6, justify="right"),
            Column("latest", priority=5),
            Column("aliases", priority=4, shrink=True),
            Column("key metric", priority=2, shrink=True),
            Column("better", priority=3),
            Column(alias, priority=1),
            Column("value", priority=1, justify="right"),
        ]
    )
    for m in data["models"]:
        key = m["key_metric"]
        table.add_row(
            m["name"],
            m["versions"],
            f"v{m['latest_version']}" if m["latest_version"] else "",
            ", ".join(f"{a}=v{v}" for a, v in m["aliases"].items()),
            key["name"] if key else "",
            ("higher" if key["higher_is_better"] else "lower") if key else "",
            f"v{m['champion']}" if m["champion"] else "",
            out.num(m["champion_metric"]),
        )
    out.table(table)


def _version_table(rows: list[dict[str, Any]], key: str | None, out: Output, title: str) -> None:
    metrics = sorted({m for r in rows for m in r["metrics"]})
    show_stage = any(r["stage"] for r in rows)
    columns = [
        Column("version", priority=0),
        Column("aliases", priority=2, shrink=True),
        Column("model", priority=3, shrink=True),
        *_metric_columns(metrics, key),
        Column("commit", priority=4),
        Column("git", priority=7),
        Column("data", priority=8, shrink=True),
        Column("created", priority=6),
        Column("decision", priority=4),
        *([Column("stage", priority=9)] if show_stage else []),
    ]
    table = Table(columns, title=title)
    order = [c.header for c in columns if c.group == "metric"]
    for r in rows:
        cells = [f"v{r['version']}", ", ".join(r["aliases"]), _kind(r["flavor"], r["model_class"])]
        cells += [out.num(r["metrics"].get(m)) for m in order]
        cells += [
            out.commit(r["git_commit"]),
            _dirty(r["git_dirty"]),
            ", ".join(f"{k}={out.digest(v)}" for k, v in sorted(r["data"].items())),
            out.when(r["created"]),
            r["decision"] or "",
            *([r["stage"] or ""] if show_stage else []),
        ]
        table.add_row(*cells)
    out.table(table)


def render_versions(result: Any, out: Output) -> None:
    data = result.to_dict()
    key = data["key_metric"]
    title = f"{data['model']}: {len(data['versions'])} versions"
    if key:
        title += f"; key metric {_key_text(key)}"
    _version_table(data["versions"], key["name"] if key else None, out, title)


def render_compare(result: Any, out: Output) -> None:
    data = result.to_dict()
    key = data["key_metric"]
    table = Table(
        [
            Column("", priority=0, min_width=4),
            Column("version", priority=0),
            Column(data["metric"], priority=0, justify="right", group="metric"),
            Column("model", priority=3, shrink=True),
            Column("aliases", priority=2, shrink=True),
            Column("commit", priority=4),
            Column("created", priority=5),
        ],
        title=f"{data['model']} by {data['metric']}: {_direction(data['higher_is_better'])} "
        f"(metric chosen by {key['chosen_by']}; direction by {key['direction_by']})",
    )
    for r in data["versions"]:
        best = r["version"] == data["best"]
        table.add_row(
            "best" if best else "",
            f"v{r['version']}",
            out.num(r["metrics"].get(data["metric"])) or "-",
            _kind(r["flavor"], r["model_class"]),
            ", ".join(r["aliases"]),
            out.commit(r["git_commit"]),
            out.when(r["created"]),
            style="bold green" if best else None,
        )
    out.table(table)


def render_best(result: Any, out: Output) -> None:
    data = result.to_dict()
    row = data["version"]
    aliases = f" ({', '.join(row['aliases'])})" if row["aliases"] else ""
    value = out.num(row["metrics"][data["metric"]])
    out.line(f"{data['model']} v{row['version']}{aliases}: {data['metric']}={value}")
    out.note(f"  {_key_text(data['key_metric'])}")


def render_show(result: Any, out: Output) -> None:
    data = result.to_dict()
    if data["kind"] == "run":
        _render_run(data, out)
        return
    aliases = f"  aliases: {', '.join(data['aliases'])}" if data["aliases"] else ""
    out.line(f"{data['model']} v{data['version']}{aliases}", style="bold")
    out.line(f"run      {data['run_id'] or '(none)'}  created {out.when(data['created'])}")
    if data["model_class"]:
        out.line(f"model    {data['model_class']} ({data['flavor'] or 'flavor unknown'})")
    elif data["flavor"]:
        out.line(f"model    {data['flavor']}")
    _code_lines(data, out)
    if data["inputs"]:
        table = Table(
            [
                Column("input", priority=0),
                Column("digest", priority=1, shrink=True, min_width=14),
                Column("kind", priority=3),
                Column("shape", priority=2),
                Column("source", priority=4, shrink=True),
            ],
            title="data",
        )
        for i in data["inputs"]:
            shape = "x".join(str(n) for n in i["shape"]) if i["shape"] else ""
            table.add_row(i["name"], i["digest"], i["kind"] or "", shape, i["source"] or "")
        out.table(table)
    _key_values("params", data["params"], out)
    _key_values("metrics", {k: out.num(v) for k, v in data["metrics"].items()}, out)
    decision = data["decision"]
    if decision is None:
        out.line("decision none recorded")
        return
    out.line(f"decision {decision['verdict']} for {decision['to']}: {decision['reason']}")
    for rule in decision.get("rules", []):
        mark = "pass" if rule["passed"] else "FAIL"
        out.line(
            f"  {mark}  {rule['rule']}: {rule['reason']}", style=None if rule["passed"] else "red"
        )


def _code_lines(data: dict[str, Any], out: Output) -> None:
    dirty = f" ({_dirty(data['git_dirty'])})" if data["git_dirty"] is not None else ""
    branch = f" on {data['git_branch']}" if data.get("git_branch") else ""
    repo = f"  {data['repo_url']}" if data.get("repo_url") else ""
    out.line(f"commit   {data['git_commit'] or 'unknown'}{dirty}{branch}{repo}")


def _key_values(label: str, values: dict[str, Any], out: Output) -> None:
    if values:
        out.line(f"{label:<8} " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))


def _render_run(data: dict[str, Any], out: Output) -> None:
    out.line(f"run {data['run_id']}  {data['name'] or ''}", style="bold")
    out.line(f"experiment {data['experiment']}  status {data['status']}")
    out.line(f"started  {out.when(data['start_time'])}  ended {out.when(data['end_time'])}")
    if data["model"]:
        kind = _kind(data["flavor"], data["model_class"])
        out.line(f"model    {data['model']} v{data['model_version']} {kind}".rstrip())
    _code_lines(data, out)
    _key_values("data", {k: out.digest(v) for k, v in data["inputs"].items()}, out)
    _key_values("params", data["params"], out)
    _key_values("metrics", {k: out.num(v) for k, v in data["metrics"].items()}, out)


def render_runs(result: Any, out: Output) -> None:
    data = result.to_dict()
    if not data["runs"]:
        out.line(f"no runs in {data['experiment']}")
    else:
        key = data["key_metric"]["name"] if data["key_metric"] else None
        metrics = sorted({m for r in data["runs"] for m in r["metrics"]})
        columns = [
            Column("run id", priority=0),
            Column("name", priority=1, shrink=True),
            Column("status", priority=3),
            Column("started", priority=4),
            Column("commit", priority=6),
            Column("model", priority=5, shrink=True),
            *_metric_columns(metrics, key, start=7),
        ]
        order = [c.header for c in columns if c.group == "metric"]
        table = Table(
            columns, title=f"{data['experiment']}: {len(data['runs'])} runs, newest first"
        )
        for r in data["runs"]:
            model = f"{r['model']} v{r['model_version']}" if r["model"] else ""
            commit = out.commit(r["git_commit"]) + (" dirty" if r["git_dirty"] else "")
            cells = [r["run_id"], r["name"] or "", r["status"], out.when(r["start_time"]), commit]
            table.add_row(*cells, model, *(out.num(r["metrics"].get(m)) for m in order))
        out.table(table)
    if data["other_experiments"]:
        names = ", ".join(data["other_experiments"][:5])
        more = len(data["other_experiments"]) - 5
        names += f" and {more} more" if more > 0 else ""
        out.note(f"other experiments hold runs too: {names} (-e NAME, or -e '*' for all)")


# --------------------------------------------------------------------------- diff


def render_diff(result: Any, out: Output) -> None:
    data = result.to_dict()
    a, b = data["a"], data["b"]

    def label(side: dict[str, Any]) -> str:
        if side["kind"] == "version":
            return f"{side['model']} v{side['version']} (run {side['run_id']})"
        return f"run {side['run_id']}"

    out.line(f"a: {label(a)}", style="bold")
    out.line(f"b: {label(b)}", style="bold")
    if data["model"]:
        out.line(f"model    {data['model']['a']} -> {data['model']['b']}")
    code = data["code"]
    states = f" ({_dirty(code['a_dirty'])} -> {_dirty(code['b_dirty'])})"
    out.line(f"code     {out.commit(code['a']) or '?'} -> {out.commit(code['b']) or '?'}{states}")
    out.line(f"         {code['log_note']}")
    for line in code["log"] or []:
        out.line(f"           {line}")
    _changes_table("data", "input", data["data"], out, digest=True)
    _changes_table("params", "param", data["params"], out)
    out.line(f"params   {data['unchanged_params']} unchanged")
    _metrics_table(data, out)


def _changes_table(
    title: str, what: str, changes: list[dict[str, Any]], out: Output, digest: bool = False
) -> None:
    if not changes:
        return
    table = Table(
        [
            Column(what, priority=0),
            Column("change", priority=0),
            Column("a", priority=1, shrink=True),
            Column("b", priority=1, shrink=True),
        ],
        title=title,
    )
    for c in changes:
        show = (lambda v: out.digest(v) if v else "") if digest else (lambda v: v or "")
        table.add_row(c["name"], c["change"], show(c["a"]), show(c["b"]))
    out.table(table)


def _metrics_table(data: dict[str, Any], out: Output) -> None:
    if not data["metrics"]:
        return
    key = data["key_metric"]
    title = "metrics (b - a)" + (f"; key metric {_key_text(key)}" if key else "")
    table = Table(
        [
            Column("metric", priority=0),
            Column("a", priority=2, justify="right"),
            Column("b", priority=2, justify="right"),
            Column("delta", priority=1, justify="right"),
            Column("", priority=0, min_width=6),
            Column("better", priority=3),
        ],
        title=title,
    )
    for m in data["metrics"]:
        delta = m["delta"]
        sign = "+" if isinstance(delta, float) and delta > 0 else ""
        style = {"better": "green", "worse": "red"}.get(m["verdict"])
        table.add_row(
            m["name"], out.num(m["a"]), out.num(m["b"]),
            f"{sign}{out.num(delta)}" if delta is not None else "",
            m["verdict"], "higher" if m["higher_is_better"] else "lower",
            style=style,
        )  # fmt: skip
    out.table(table)


# --------------------------------------------------------------------------- writes and local


def render_promote(result: Any, out: Output) -> None:
    for line in result.decision.summary().splitlines():
        out.line(line)
    if result.policy:
        out.note(f"  judged by {result.policy}")


def render_rollback(result: Any, out: Output) -> None:
    was = f" from v{result.previous}" if result.previous else ""
    out.line(f"{result.model}: {result.alias} moved back{was} to v{result.version}")


def render_gc(result: Any, out: Output) -> None:
    def versions(items: Iterable[str]) -> str:
        return ", ".join(f"v{v}" for v in items) or "none"

    verb = "would delete" if result.dry_run else "deleted"
    out.line(f"{result.model}: {verb} {versions(result.deleted)}")
    out.line(f"  kept (newest {result.keep}): {versions(result.kept)}")
    out.line(f"  protected (alias or rollback history): {versions(result.protected)}")
    if result.dry_run and result.deleted:
        out.line("  (dry run: add --delete to delete them)")


def render_register(result: Any, out: Output) -> None:
    verb = "is already" if result.already_registered else "registered as"
    out.line(f"run {result.run_id} {verb} {result.model} v{result.version}")


def render_log(result: Any, out: Output) -> None:
    out.line(
        f"recorded run {result.run_id} ({result.name}) in {result.experiment}: "
        f"{len(result.params)} params, {len(result.metrics)} metrics"
    )


def render_doctor(result: Any, out: Output) -> None:
    table = Table(
        [
            Column("setting", priority=0),
            Column("value", priority=1, shrink=True, min_width=16),
            Column("from", priority=2, shrink=True, min_width=12),
        ]
    )
    for c in result.config:
        table.add_row(c.name, "" if c.value is None else c.value, c.origin)
    out.table(table)
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    for check in result.checks:
        style = {True: None, False: "red", None: "dim"}[check.ok]
        out.line(f"{marks[check.ok]} {check.name}: {check.detail}", style=style)
        if check.ok is False and check.fix:
            out.line(f"     fix: {check.fix}")


def render_sync(result: Any, out: Output) -> None:
    for line in result.lines():
        out.line(line)


RENDERERS: dict[str, Callable[[Any, Output], None]] = {
    "models": render_models,
    "versions": render_versions,
    "show": render_show,
    "compare": render_compare,
    "best": render_best,
    "diff": render_diff,
    "runs": render_runs,
    "promote": render_promote,
    "rollback": render_rollback,
    "gc": render_gc,
    "register": render_register,
    "log": render_log,
    "doctor": render_doctor,
    "sync": render_sync,
}


# --------------------------------------------------------------------------- sync progress


class _SyncLines:
    """Piped: one line per spooled run as it is sent."""

    def __init__(self, out: Output) -> None:
        self.out = out

    def start(self, total: int) -> None:
        self.out.note(f"sending {total} spooled runs")

    def advance(self, entry: Any) -> None:
        self.out.line(entry.line())
        self.out.stream.flush()

    def close(self) -> None:
        return None


class _SyncBar(_SyncLines):
    """A terminal: a bar, with each run's line printed above it."""

    def __init__(self, out: Output) -> None:
        super().__init__(out)
        self.progress: Any = None
        self.task: Any = None

    def start(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "sync",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.out.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("sync", total=total)

    def advance(self, entry: Any) -> None:
        if self.progress is None:
            self.out.line(entry.line())
            return
        self.progress.console.print(entry.line(), highlight=False, markup=False)
        self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def sync_progress(out: Output) -> _SyncLines:
    """What `tracked sync` reports progress to: a bar on a terminal, lines when piped."""
    return _SyncBar(out) if out.terminal else _SyncLines(out)
