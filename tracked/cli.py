"""`tracked`: the command line over `tracked.ops`. It parses arguments and renders results.

Every data command's arguments and options are built from its operation's signature
(`Annotated[type, Param(...)]` in tracked/ops/), the same declarations the MCP tools use.

Exit codes: 0 success; 1 a refused or failed operation (a policy said no, an unknown model or
run, an unreachable store, a failed doctor check); 2 bad usage: an unknown option, a malformed
value or reference, a metric no version logged, a bad filter, a configuration error. Errors are
one line on stderr; `--debug` shows the traceback. `--json` prints exactly one JSON document on
stdout, also for every error: `{"error": ..., "type": ..., "exit_code": ...}`.

On a terminal tables fit its width (tracked/tables.py); piped, they are tab-separated.
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import click

from tracked.errors import ConfigError, TrackingError
from tracked.ops import OPERATIONS, Declared, InputError, Operation, plain
from tracked.ops.base import stdout_to_stderr

__all__ = ["cli", "main"]

USAGE = 2
FAILED = 1


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


_SCALARS: dict[Any, click.ParamType] = {str: click.STRING, int: click.INT, float: click.FLOAT}


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
            except InputError as exc:  # click names the option already
                raise click.BadParameter(f"{exc.value!r}: {exc.fix}") from None
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
            [d.name], type=_SCALARS.get(base, click.STRING), metavar=d.name.upper(),
            callback=callback,
        )  # fmt: skip
    common: dict[str, Any] = {"help": d.param.help, "callback": callback}
    if d.required:
        common["required"] = True
    elif d.default is not None:
        common["default"] = d.default
        common["show_default"] = True
    if base is bool:
        common["default"] = d.default  # None for a switch whose default is "decide for me"
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
    from tracked.render import RENDERERS
    from tracked.tables import Output

    out = Output()
    progress = None
    if op.command == "sync" and not g.json:
        from tracked.render import sync_progress

        progress = kwargs["progress"] = sync_progress(out)
    try:
        with stdout_to_stderr():  # stdout is for our output alone: MLflow prints there
            result = op.fn(**kwargs, tracking_uri=g.tracking_uri)
    except Exception as exc:
        if g.debug:
            raise
        _fail(ctx, exc, g)
    finally:
        if progress is not None:
            progress.close()
    if g.json:
        click.echo(_dumps(result.to_dict()))
    elif op.command == "ui":
        _run_ui(ctx, result, out)
    else:
        RENDERERS[str(op.command)](result, out)
    if getattr(result, "ok", True) is False:
        ctx.exit(FAILED)


def _fail(ctx: click.Context, exc: BaseException, g: _Globals) -> None:
    code = USAGE if isinstance(exc, (InputError, ConfigError)) else FAILED
    if isinstance(exc, TrackingError):
        message = str(exc)
    else:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        message = f"tracked: unexpected {type(exc).__name__}: {first} (see it with --debug)"
    if g.json:
        click.echo(_dumps({"error": message, "type": type(exc).__name__, "exit_code": code}))
    click.echo(message, err=True)
    ctx.exit(code)


def _dumps(data: Any) -> str:
    return json.dumps(plain(data), indent=2, allow_nan=False, default=str)


def _run_ui(ctx: click.Context, plan: Any, out: Any) -> None:
    from tracked.ops import serve_ui

    if plan.command is None:
        out.line(f"the tracking store is a server: open {plan.url}")
        return
    out.line(f"MLflow UI at {plan.url} (Ctrl-C stops it and its worker)")
    sys.stdout.flush()
    code = serve_ui(plan, started=lambda pid: out.note(f"server process group {pid}"))
    if code:
        ctx.exit(code)


# --------------------------------------------------------------------------- the group


def _wants_json(args: Sequence[str]) -> bool:
    before = list(args)[: list(args).index("--")] if "--" in args else list(args)
    return "--json" in before


class _Group(click.Group):
    """Usage errors as one JSON document too, when --json was asked for (exit 2 either way)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if _wants_json(argv):
                message = f"tracked: {exc.format_message()}"
                data = {"error": message, "type": "UsageError", "exit_code": exc.exit_code}
                click.echo(_dumps(data))
                click.echo(message, err=True)
            else:
                exc.show()
            code = exc.exit_code
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.Abort:
            click.echo("Aborted!", err=True)
            code = FAILED
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    help="also offer the tools that change things: promote (under the project's configured "
    "policies only), rollback, register_model, log_run",
)
@click.option("--tracking-uri", metavar="URI", help="tracking store for the server's tools")
@click.pass_context
def mcp_command(ctx: click.Context, allow_writes: bool, tracking_uri: str | None) -> None:
    """Serve the operations as MCP tools over stdio (read-only unless --allow-writes)."""
    from tracked.mcp import build_server

    outer = ctx.find_object(_Globals) or _Globals()
    uri = tracking_uri or outer.tracking_uri
    try:
        server = build_server(allow_writes=allow_writes, tracking_uri=uri)
    except ImportError as exc:
        if exc.name != "mcp":
            raise
        raise click.ClickException(str(exc).removeprefix("tracked: ")) from None
    server.run("stdio")


def main(argv: Sequence[str] | None = None) -> None:
    """The `tracked` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="tracked")


if __name__ == "__main__":  # pragma: no cover
    main()
