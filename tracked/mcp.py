"""`tracked mcp`: the operations of `tracked.ops` as MCP tools, for agents.

Each tool is generated from its operation: the input schema comes from the operation's
signature (`Annotated[type, Param(help=...)]` becomes a pydantic `Field(description=...)`), the
same declarations the CLI builds its options from. Tools return the operation's `to_dict()`.

Writes are rule-bound. Without `allow_writes=True` (`tracked mcp --allow-writes`) the tools that
change the store (promote, rollback, register_model, log_run) are listed as refused: their
description says so and a call returns tracked's explanation, touching nothing. With it, an
agent's `promote` is judged by the policy the project configured for the alias
(`[tool.tracked.policies]`), always; an alias without one is refused; there is no `force` and
no way to name another policy. Python's stdout points at stderr while a tool runs, so a print in
user code (a policy module) cannot corrupt the stdio protocol.

Needs the `mcp` package: `pip install 'tracked[mcp]'`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

from tracked.errors import TrackingError
from tracked.ops import OPERATIONS, Operation
from tracked.ops.base import stdout_to_stderr

__all__ = ["build_server", "tools"]

_READ_ONLY_NOTE = (
    "This server is read-only: the tools that change the registry or record runs "
    "(promote, rollback, register_model, log_run) are listed but refused. Restart it with "
    "`tracked mcp --allow-writes` to allow them."
)
_AGENT_PROMOTE_NOTE = (
    " For an agent, the promotion is always judged by the policy the project configured for "
    "the alias ([tool.tracked.policies] in pyproject.toml); an alias without one is refused, "
    "and a refused decision cannot be forced."
)


def tools(*, allow_writes: bool = False) -> list[Operation]:
    """The operations that run as tools, in `OPERATIONS` order (the others are refused)."""
    return [op for op in OPERATIONS if op.tool is not None and (allow_writes or not op.writes)]


def _refused(op: Operation) -> str:
    return (
        f"tracked: refused: `{op.tool}` changes the store and this server is read-only; "
        "restart it with `tracked mcp --allow-writes` to allow it"
    )


def build_server(*, allow_writes: bool = False, tracking_uri: str | None = None) -> Any:
    """An MCP server (mcp's MCPServer, FastMCP in mcp 1.x) with one tool per operation."""
    server_class, _ = _mcp_api()
    from mcp.types import ToolAnnotations

    from tracked import __version__

    instructions = (
        "Tools over tracked's MLflow store: search runs, list registered models and versions, "
        "find the best version by its key metric, show a version's lineage, compare versions, "
        "diff two versions or runs."
    )
    instructions += " " + (_AGENT_PROMOTE_NOTE.strip() if allow_writes else _READ_ONLY_NOTE)
    server = server_class(
        name="tracked", instructions=instructions, version=__version__, log_level="WARNING"
    )
    for op in OPERATIONS:
        if op.tool is None:
            continue
        runs = allow_writes or not op.writes
        description = op.doc + (_AGENT_PROMOTE_NOTE if op.tool == "promote" else "")
        if not runs:
            description = f"REFUSED on this read-only server. {_READ_ONLY_NOTE}\n\n{description}"
        server.add_tool(
            _tool_function(op, tracking_uri, refused=not runs),
            name=op.tool,
            description=description,
            # the wire names: field names in mcp 1.x, aliases in 2.x
            annotations=ToolAnnotations.model_validate(
                {
                    "readOnlyHint": not op.writes,
                    "destructiveHint": op.writes and op.tool in ("promote", "rollback"),
                    "idempotentHint": not op.writes,
                    "openWorldHint": False,
                }
            ),
            structured_output=True,
        )
    return server


def _mcp_api() -> tuple[type, type[Exception]]:
    """(server class, ToolError) in mcp 2.x, or in 1.x where the server was FastMCP."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:
        try:  # pragma: no cover - mcp 1.x
            from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[attr-defined,no-redef]
            from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(
                "tracked: `tracked mcp` needs the mcp package: pip install 'tracked[mcp]'",
                name="mcp",
            ) from None
    return MCPServer, ToolError


def _tool_function(op: Operation, tracking_uri: str | None, *, refused: bool = False) -> Any:
    """An async function whose signature is the operation's declared parameters.

    The MCP SDK derives the input schema from that signature; `Param.help` becomes each
    field's description. The operation runs in a worker thread (MLflow's client blocks).
    """
    import anyio.to_thread
    from pydantic import Field

    _, tool_error = _mcp_api()
    parameters = [
        inspect.Parameter(
            d.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=d.default,
            annotation=Annotated[d.annotation, Field(description=d.param.help)],
        )
        for d in op.parameters()
        if d.param.tool
    ]
    context: dict[str, Any] = {"tracking_uri": tracking_uri}
    if op.takes("agent"):
        context["agent"] = True

    def run(arguments: dict[str, Any]) -> dict[str, Any]:
        with stdout_to_stderr():
            return dict(op.fn(**arguments, **context).to_dict())

    async def call(**arguments: Any) -> dict[str, Any]:
        if refused:
            raise tool_error(_refused(op))
        try:
            return await anyio.to_thread.run_sync(functools.partial(run, arguments))
        except TrackingError as exc:
            raise tool_error(str(exc)) from None

    call.__name__ = call.__qualname__ = str(op.tool)
    call.__doc__ = op.doc
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=dict[str, Any]
    )
    return call
