"""`tracked`: the command line over `tracked.ops`. It parses arguments and renders results.

Every data command's arguments and options are built from its operation's signature
(`Annotated[type, Param(...)]` in tracked/ops.py), the same declarations the MCP tools use.
Exit codes: 0 success, 1 a refused or failed operation (a policy said no, an unknown model, an
unreachable store), 2 bad usage. Errors are one line on stderr; `--debug` shows the traceback.
`--json` prints exactly one JSON document on stdout (on an error: `{"error": ..., "type": ...}`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import click

from tracked.errors import TrackingError
from tracked.ops import OPERATIONS, Declared, Operation, plain

__all__ = ["cli", "main"]


# --------------------------------------------------------------------------- building commands


@dataclass(frozen=True)
class _Globals:
    tracking_uri: str | None = None
    json: bool = False
    debug: bool = False


_COMMON = ("tracking_uri", "as_json", "debug")


def _common_options() -> list[click.Option]:
    """Accepted before the command (`tracked --json models`) and after it (`models --json`)."""
    return [
        click.Option(
            ["--tracking-uri", "tracking_uri"],
            metavar="URI",
            help="tracking store for this invocation (overrides the configuration)",
        ),
        click.Option(
            ["--json", "as_json"], is_flag=True, help="print one JSON document, for scripts"
        ),
        click.Option(["--debug"], is_flag=True, help="show tracebacks on errors"),
    ]


def _globals(ctx: click.Context, values: dict[str, Any]) -> _Globals:
    outer = ctx.find_object(_Globals) or _Globals()
    uri, as_json, debug = (values.pop(name) for name in _COMMON)
    return _Globals(uri or outer.tracking_uri, as_json or outer.json, debug or outer.debug)


def _unwrap_optional(annotation: Any) -> Any:
    """`int | None` -> `int`; anything else as it is."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


_SCALARS: dict[Any, click.ParamType] = {
    str: click.STRING,
    int: click.INT,
    float: click.FLOAT,
}


class _KeyValue(click.ParamType):
    """KEY=VALUE, with VALUE converted to the operation's value type."""

    name = "key=value"

    def __init__(self, value_type: Any) -> None:
        self.value_type = value_type

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r} is not KEY=VALUE", param, ctx)
        if self.value_type in (int, float):
            try:
                return key, self.value_type(raw)
            except ValueError:
                self.fail(f"{key}: {raw!r} is not a number", param, ctx)
        return key, raw


def _option_names(d: Declared) -> list[str]:
    return [*(d.param.flags or (f"--{d.name.replace('_', '-')}",)), d.name]


def _check_callback(d: Declared) -> Callable[..., Any] | None:
    check = d.param.check
    if check is None:
        return None

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            try:
                check(value)
            except Exception as exc:
                raise click.BadParameter(str(exc).removeprefix("tracked: ")) from None
        return value

    return callback


def _click_param(d: Declared) -> click.Parameter:
    """A click argument or option from one declared parameter."""
    base = _unwrap_optional(d.annotation)
    origin = get_origin(base)
    callback = _check_callback(d)
    if not d.param.flags and d.required:
        return click.Argument(
            [d.name], type=_SCALARS.get(base, click.STRING), metavar=d.name.upper()
        )
    common: dict[str, Any] = {"help": d.param.help, "callback": callback}
    if d.required:
        common["required"] = True
    elif d.default is not None:
        common["default"] = d.default
        common["show_default"] = True
    if base is bool:
        return click.Option(_option_names(d), is_flag=True, **common)
    if origin is list:
        (item,) = get_args(base)
        common.pop("show_default", None)
        return click.Option(
            _option_names(d), type=_SCALARS.get(item, click.STRING), multiple=True, **common
        )
    if origin is dict:
        value_type = _unwrap_optional(get_args(base)[1])
        common.pop("default", None)
        return click.Option(_option_names(d), type=_KeyValue(value_type), multiple=True, **common)
    return click.Option(_option_names(d), type=_SCALARS.get(base, click.STRING), **common)


def _value(d: Declared, value: Any) -> Any:
    """Click's tuple for a repeated option back into the operation's list or dict."""
    origin = get_origin(_unwrap_optional(d.annotation))
    if origin is list:
        return list(value) or None
    if origin is dict:
        return dict(value) or None
    return value


class _Command(click.Command):
    """A command whose list options take several values: `--versions 3 5 7`."""

    def __init__(self, *args: Any, greedy: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.greedy = set(greedy)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        expanded: list[str] = []
        flag = None
        for arg in args:
            if arg.startswith("-"):
                flag = arg if arg in self.greedy else None
                expanded.append(arg)
            elif flag is not None and expanded[-1] != flag:
                expanded += [flag, arg]  # a further value: repeat the option before it
            else:
                expanded.append(arg)
        return super().parse_args(ctx, expanded)


def _help(op: Operation, declared: list[Declared]) -> str:
    arguments = [d for d in declared if not d.param.flags and d.required]
    text = op.doc
    if arguments:
        width = max(len(d.name) for d in arguments) + 2
        lines = [f"  {d.name.upper():<{width}}{d.param.help}" for d in arguments]
        text += "\n\n\b\nArguments:\n" + "\n".join(lines)
    return text


def _command(op: Operation) -> click.Command:
    declared = op.parameters()
    greedy = [
        flag
        for d in declared
        if get_origin(_unwrap_optional(d.annotation)) is list
        for flag in d.param.flags
    ]

    def callback(**values: Any) -> None:
        ctx = click.get_current_context()
        options = _globals(ctx, values)
        kwargs = {d.name: _value(d, values[d.name]) for d in declared}
        _execute(ctx, op, kwargs, options)

    assert op.command is not None
    return _Command(
        op.command,
        params=[*(_click_param(d) for d in declared), *_common_options()],
        callback=callback,
        help=_help(op, declared),
        short_help=op.summary,
        greedy=greedy,
    )


# --------------------------------------------------------------------------- running one


def _execute(ctx: click.Context, op: Operation, kwargs: dict[str, Any], g: _Globals) -> None:
    try:
        # stdout is for our output alone: MLflow prints "View run ..." links there
        with contextlib.redirect_stdout(sys.stderr):
            result = op.fn(**kwargs, tracking_uri=g.tracking_uri)
    except Exception as exc:
        if g.debug:
            raise
        _fail(ctx, exc, g)
    if g.json:
        click.echo(_dumps(result.to_dict()))
    else:
        RENDERERS[str(op.command)](result, _console())
    if getattr(result, "ok", True) is False:
        ctx.exit(1)


def _fail(ctx: click.Context, exc: BaseException, g: _Globals) -> None:
    if isinstance(exc, TrackingError):
        message = str(exc)
    else:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        message = f"tracked: unexpected {type(exc).__name__}: {first} (see it with --debug)"
    if g.json:
        click.echo(_dumps({"error": message, "type": type(exc).__name__}))
    click.echo(message, err=True)
    ctx.exit(1)


def _dumps(data: Any) -> str:
    return json.dumps(plain(data), indent=2, allow_nan=False, default=str)


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(width=width, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- rendering


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _metrics(metrics: dict[str, float], limit: int = 4) -> str:
    items = [f"{k}={_num(v)}" for k, v in sorted(metrics.items())]
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f", +{more}" if more > 0 else "")


def _digest(value: str) -> str:
    return value.rsplit(":", 1)[-1][:12]


def _dirty(value: bool | None) -> str:
    return {True: "dirty", False: "clean", None: ""}[value]


# identifiers and dates stay on one line; free text (metrics, reasons) wraps
_NO_WRAP = frozenset(
    ("", "version", "latest", "run id", "commit", "git", "created", "started", "status", "model")
)


def _table(*columns: str, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column in _NO_WRAP, overflow="fold")
    return table


def _escape(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def _render_models(result: Any, console: Any) -> None:
    if not result.models:
        console.print("no registered models yet")
        return
    table = _table("model", "versions", "latest", "aliases", "key metric", "champion")
    for m in result.models:
        aliases = ", ".join(f"{a}=v{v}" for a, v in m.aliases.items())
        champion = f"v{m.champion}" if m.champion else ""
        if m.champion and m.key_metric and m.champion_metric is not None:
            champion += f" {m.key_metric}={_num(m.champion_metric)}"
        table.add_row(
            _escape(m.name),
            str(m.versions),
            f"v{m.latest_version}" if m.latest_version else "",
            _escape(aliases),
            _escape(m.key_metric or ""),
            _escape(champion),
        )
    console.print(table)


def _render_versions(result: Any, console: Any) -> None:
    table = _table(
        "version", "aliases", "metrics", "commit", "git", "data", "created", "decision",
        title=f"{result.model}: {len(result.versions)} versions",
    )  # fmt: skip
    for row in result.versions:
        data = "\n".join(f"{k}={_digest(v)}" for k, v in sorted(row.data.items()))
        table.add_row(
            f"v{row.version}",
            _escape(", ".join(row.aliases)),
            _escape(_metrics(row.metrics)),
            (row.git_commit or "")[:8],
            _dirty(row.git_dirty),
            _escape(data),
            _when(row.created),
            _escape(row.decision or ""),
        )
    console.print(table)


def _render_show(result: Any, console: Any) -> None:
    lin = result.lineage
    aliases = f"  aliases: {', '.join(lin.aliases)}" if lin.aliases else ""
    console.print(f"[bold]{_escape(lin.model)} v{lin.version}[/bold]{_escape(aliases)}")
    console.print(f"run      {lin.run_id or '(none)'}  created {_when(lin.created)}")
    git = (lin.git_commit or "unknown") + (
        f" ({_dirty(lin.git_dirty)})" if lin.git_dirty is not None else ""
    )
    branch = f" on {lin.git_branch}" if lin.git_branch else ""
    repo = f"  {lin.repo_url}" if lin.repo_url else ""
    console.print(_escape(f"commit   {git}{branch}{repo}"))
    if lin.inputs:
        table = _table("input", "digest", "kind", "shape", "source", title="data")
        for i in lin.inputs:
            shape = "x".join(str(n) for n in i.shape) if i.shape else ""
            table.add_row(
                _escape(i.name), _escape(i.digest), _escape(i.kind or ""), shape,
                _escape(i.source or ""),
            )  # fmt: skip
        console.print(table)
    if lin.params:
        console.print(
            "params   " + _escape(", ".join(f"{k}={v}" for k, v in sorted(lin.params.items())))
        )
    if lin.metrics:
        console.print("metrics  " + _escape(_metrics(lin.metrics, limit=20)))
    decision = result.decision
    if decision is None:
        console.print("decision none recorded")
        return
    console.print(
        _escape(f"decision {decision['verdict']} for {decision['to']}: {decision['reason']}")
    )
    for rule in decision.get("rules", []):
        mark = "pass" if rule["passed"] else "[red]FAIL[/red]"
        console.print(f"  {mark}  {_escape(rule['rule'])}: {_escape(rule['reason'])}")


def _render_compare(result: Any, console: Any) -> None:
    direction = "higher" if result.higher_is_better else "lower"
    table = _table(
        "", "version", result.metric, "aliases", "commit", "created",
        title=f"{result.model} by {result.metric} ({direction} is better)",
    )  # fmt: skip
    for row in result.versions:
        best = row.version == result.best
        table.add_row(
            "[bold green]best[/bold green]" if best else "",
            f"v{row.version}",
            _num(row.metrics.get(result.metric)) or "-",
            _escape(", ".join(row.aliases)),
            (row.git_commit or "")[:8],
            _when(row.created),
        )
    console.print(table)


def _render_best(result: Any, console: Any) -> None:
    row = result.version
    aliases = f" ({', '.join(row.aliases)})" if row.aliases else ""
    value = _num(row.metrics[result.metric])
    console.print(_escape(f"{result.model} v{row.version}{aliases}: {result.metric}={value}"))


def _render_runs(result: Any, console: Any) -> None:
    if not result.runs:
        console.print(_escape(f"no runs in {result.experiment}"))
        return
    table = _table("run id", "name", "status", "started", "commit", "model", "metrics")
    for r in result.runs:
        model = f"{r.model} v{r.model_version}" if r.model else ""
        commit = (r.git_commit or "")[:8] + (" dirty" if r.git_dirty else "")
        table.add_row(
            r.run_id, _escape(r.name or ""), r.status, _when(r.start_time), commit,
            _escape(model), _escape(_metrics(r.metrics, limit=3)),
        )  # fmt: skip
    console.print(table)


def _render_promote(result: Any, console: Any) -> None:
    for line in result.decision.summary().splitlines():
        console.print(_escape(line))


def _render_rollback(result: Any, console: Any) -> None:
    was = f" from v{result.previous}" if result.previous else ""
    console.print(_escape(f"{result.model}: {result.alias} moved back{was} to v{result.version}"))


def _render_gc(result: Any, console: Any) -> None:
    def versions(items: list[str]) -> str:
        return ", ".join(f"v{v}" for v in items) or "none"

    verb = "would delete" if result.dry_run else "deleted"
    console.print(_escape(f"{result.model}: {verb} {versions(result.deleted)}"))
    console.print(_escape(f"  kept (newest {result.keep}): {versions(result.kept)}"))
    console.print(_escape(f"  protected (alias or rollback history): {versions(result.protected)}"))
    if result.dry_run and result.deleted:
        console.print("  (dry run: add --delete to delete them)")


def _render_register(result: Any, console: Any) -> None:
    verb = "is already" if result.already_registered else "registered as"
    console.print(_escape(f"run {result.run_id} {verb} {result.model} v{result.version}"))


def _render_log(result: Any, console: Any) -> None:
    console.print(
        _escape(
            f"recorded run {result.run_id} ({result.name}) in {result.experiment}: "
            f"{len(result.params)} params, {len(result.metrics)} metrics"
        )
    )


def _render_doctor(result: Any, console: Any) -> None:
    table = _table("setting", "value", "from")
    for c in result.config:
        table.add_row(c.name, _escape("" if c.value is None else c.value), _escape(c.origin))
    console.print(table)
    marks = {True: "[green]ok  [/green]", False: "[red]FAIL[/red]", None: "--  "}
    for check in result.checks:
        console.print(f"{marks[check.ok]} {_escape(check.name)}: {_escape(check.detail)}")
        if check.ok is False and check.fix:
            console.print(f"     fix: {_escape(check.fix)}")


def _render_sync(result: Any, console: Any) -> None:
    for line in result.lines():
        console.print(_escape(line))


def _render_ui(result: Any, console: Any) -> None:
    if result.command is None:
        console.print(_escape(f"the tracking store is a server: open {result.url}"))
        return
    console.print(_escape(f"MLflow UI at {result.url} (Ctrl-C stops it)"))
    code = subprocess.call(result.command)
    if code:
        click.get_current_context().exit(code)


RENDERERS: dict[str, Callable[[Any, Any], None]] = {
    "models": _render_models,
    "versions": _render_versions,
    "show": _render_show,
    "compare": _render_compare,
    "best": _render_best,
    "runs": _render_runs,
    "promote": _render_promote,
    "rollback": _render_rollback,
    "gc": _render_gc,
    "register": _render_register,
    "log": _render_log,
    "doctor": _render_doctor,
    "sync": _render_sync,
    "ui": _render_ui,
}


# --------------------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tracking-uri", metavar="URI", help="tracking store (overrides the configuration)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document, for scripts")
@click.option("--debug", is_flag=True, help="show tracebacks on errors")
@click.version_option(package_name="tracked", prog_name="tracked")
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None, as_json: bool, debug: bool) -> None:
    """Browse, compare and promote what tracked recorded in MLflow."""
    ctx.obj = _Globals(tracking_uri, as_json, debug)


for _op in OPERATIONS:
    if _op.command is not None:
        cli.add_command(_command(_op))


@cli.command("mcp")
@click.option(
    "--allow-writes",
    is_flag=True,
    help="also offer the tools that change things: promote, rollback, register_model, log_run",
)
@click.option("--tracking-uri", metavar="URI", help="tracking store for the server's tools")
@click.pass_context
def mcp_command(ctx: click.Context, allow_writes: bool, tracking_uri: str | None) -> None:
    """Serve the operations as MCP tools over stdio (read-only unless --allow-writes)."""
    from tracked.mcp import build_server

    outer = ctx.find_object(_Globals) or _Globals()
    uri = tracking_uri or outer.tracking_uri
    build_server(allow_writes=allow_writes, tracking_uri=uri).run("stdio")


def main(argv: Sequence[str] | None = None) -> None:
    """The `tracked` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="tracked")


if __name__ == "__main__":  # pragma: no cover
    main()
