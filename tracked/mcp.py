"""`tracked mcp`: the operations of `tracked.ops` as MCP tools, for agents.

Each tool is generated from its operation: the input schema comes from the operation's
signature (`Annotated[type, Param(help=...)]` becomes a pydantic `Field(description=...)`), the
same declarations the CLI builds its options from. Tools return the operation's `to_dict()`.
Read-only by default: the tools that change the store (promote, rollback, register_model,
log_run) are offered only with `allow_writes=True` (`tracked mcp --allow-writes`).
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

from tracked.errors import TrackingError
from tracked.ops import OPERATIONS, Operation

__all__ = ["build_server", "tools"]

_READ_ONLY_NOTE = (
    "This server is read-only: the tools that change the registry or record runs "
    "(promote, rollback, register_model, log_run) are off. Restart it with "
    "`tracked mcp --allow-writes` to offer them."
)


def tools(*, allow_writes: bool = False) -> list[Operation]:
    """The operations offered as tools, in `OPERATIONS` order."""
    return [op for op in OPERATIONS if op.tool is not None and (allow_writes or not op.writes)]


def build_server(*, allow_writes: bool = False, tracking_uri: str | None = None) -> Any:
    """An MCP server (mcp's MCPServer, FastMCP in mcp 1.x) with one tool per operation."""
    from mcp.types import ToolAnnotations

    server_class, _ = _mcp_api()
    from tracked import __version__

    instructions = (
        "Tools over tracked's MLflow store: search runs, list registered models and versions, "
        "find the best version by a metric, show a version's lineage, compare versions."
    )
    if not allow_writes:
        instructions += " " + _READ_ONLY_NOTE
    server = server_class(
        name="tracked", instructions=instructions, version=__version__, log_level="WARNING"
    )
    for op in tools(allow_writes=allow_writes):
        server.add_tool(
            _tool_function(op, tracking_uri),
            name=op.tool,
            description=op.doc,
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
    except ImportError:  # pragma: no cover - mcp 1.x
        from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[attr-defined,no-redef]
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]
    return MCPServer, ToolError


def _tool_function(op: Operation, tracking_uri: str | None) -> Any:
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

    async def call(**arguments: Any) -> dict[str, Any]:
        run = functools.partial(op.fn, **arguments, tracking_uri=tracking_uri)
        try:
            result = await anyio.to_thread.run_sync(run)
        except TrackingError as exc:
            raise tool_error(str(exc)) from None
        return dict(result.to_dict())

    call.__name__ = call.__qualname__ = str(op.tool)
    call.__doc__ = op.doc
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=dict[str, Any]
    )
    return call
