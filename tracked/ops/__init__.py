"""Operations on runs and the registry: plain functions returning plain data.

The command line (`tracked.cli`) and the MCP server (`tracked.mcp`) only parse arguments and
render what these return. Each parameter is declared once, in the signature, as
`Annotated[type, Param(help=...)]`: the CLI builds its arguments and options from that, the MCP
server its tool input schemas, so the two cannot drift apart. `OPERATIONS` says which operation
is which command and which tool. Every result has `to_dict()` (JSON-safe: no NaN, no tuples,
times as ISO 8601 UTC text).

One module per group: models.py (registry listings), show.py (one version or run), compare.py
(ranking), diff.py, promotion.py (alias moves, retention, configured policies), register.py,
runs.py, doctor.py and storage.py (its artifact checks), local.py (sync, ui); base.py holds
what they share.
"""

from __future__ import annotations

from tracked.ops.base import (
    Declared,
    InputError,
    Operation,
    Param,
    declared_parameters,
    plain,
)
from tracked.ops.compare import best_version, compare
from tracked.ops.diff import diff
from tracked.ops.doctor import doctor
from tracked.ops.local import serve_ui, sync, ui_plan
from tracked.ops.models import list_models, list_versions
from tracked.ops.promotion import configured_policies, gc, load_policy, promote, rollback
from tracked.ops.register import register_model
from tracked.ops.runs import log_run, search_runs
from tracked.ops.show import show_version

__all__ = [
    "OPERATIONS",
    "Declared",
    "InputError",
    "Operation",
    "Param",
    "best_version",
    "compare",
    "configured_policies",
    "declared_parameters",
    "diff",
    "doctor",
    "gc",
    "list_models",
    "list_versions",
    "load_policy",
    "log_run",
    "plain",
    "promote",
    "register_model",
    "rollback",
    "search_runs",
    "serve_ui",
    "show_version",
    "sync",
    "ui_plan",
]

OPERATIONS: tuple[Operation, ...] = (
    Operation(list_models, command="models", tool="list_models"),
    Operation(list_versions, command="versions", tool="list_versions"),
    Operation(show_version, command="show", tool="lineage"),
    Operation(compare, command="compare", tool="compare"),
    Operation(best_version, command="best", tool="best_version"),
    Operation(diff, command="diff", tool="diff"),
    Operation(search_runs, command="runs", tool="search_runs"),
    Operation(promote, command="promote", tool="promote", writes=True),
    Operation(rollback, command="rollback", tool="rollback", writes=True),
    Operation(register_model, command="register", tool="register_model", writes=True),
    Operation(log_run, command="log", tool="log_run", writes=True),
    Operation(gc, command="gc", tool=None, writes=True),
    Operation(doctor, command="doctor", tool=None),
    Operation(sync, command="sync", tool=None, writes=True),
    Operation(ui_plan, command="ui", tool=None),
)
