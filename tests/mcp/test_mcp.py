"""The MCP server: tools generated from tracked.ops, called through the mcp client."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

import tracked
from tracked.mcp import build_server
from tracked.ops import OPERATIONS

READ_TOOLS = {"search_runs", "list_models", "list_versions", "best_version", "lineage", "compare"}
WRITE_TOOLS = {"promote", "rollback", "register_model", "log_run"}


def session(server: Any, body: Callable[[Client], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with Client(server) as client:
            return await body(client)

    return anyio.run(main)


def call(server: Any, name: str, arguments: dict[str, Any]) -> Any:
    return session(server, lambda client: client.call_tool(name, arguments))


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)
    assert text == result.structured_content
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content)


def test_tools_listed_with_schemas_from_the_operations(mcp_registry) -> None:
    tools = session(build_server(), lambda client: client.list_tools()).tools
    assert {t.name for t in tools} == READ_TOOLS
    writable = session(build_server(allow_writes=True), lambda c: c.list_tools()).tools
    assert {t.name for t in writable} == READ_TOOLS | WRITE_TOOLS

    ops = {op.tool: op for op in OPERATIONS if op.tool}
    for tool in writable:
        op = ops[tool.name]
        assert tool.description == op.doc
        declared = {d.name: d for d in op.parameters() if d.param.tool}
        properties = tool.input_schema["properties"]
        assert set(properties) == set(declared), tool.name
        for name, d in declared.items():
            assert properties[name]["description"] == d.param.help
        required = {n for n, d in declared.items() if d.required}
        assert set(tool.input_schema.get("required", [])) == required
        assert tool.annotations.read_only_hint is (tool.name in READ_TOOLS)
    promote = next(t for t in writable if t.name == "promote")
    assert "force" not in promote.input_schema["properties"]  # policy overrides stay human
    compare = next(t for t in writable if t.name == "compare")
    assert compare.input_schema["properties"]["versions"]["anyOf"][0] == {
        "items": {"type": "integer"},
        "type": "array",
    }


def test_read_tools(mcp_registry) -> None:
    server = build_server(tracking_uri=mcp_registry.uri)
    model = mcp_registry.model

    models = data(call(server, "list_models", {"metric": "val_auc"}))["models"]
    (found,) = [m for m in models if m["name"] == model]
    assert found["champion"] == "1" and found["champion_metric"] == pytest.approx(0.7)

    versions = data(call(server, "list_versions", {"name": model}))["versions"]
    assert [v["version"] for v in versions] == ["2", "1"]
    assert versions[1]["aliases"] == ["champion"]

    best = data(call(server, "best_version", {"name": model, "metric": "val_auc"}))
    assert best["version"]["version"] == "2"
    worst = data(
        call(
            server,
            "best_version",
            {"name": model, "metric": "val_auc", "higher_is_better": False},
        )
    )
    assert worst["version"]["version"] == "1"

    lineage = data(call(server, "lineage", {"ref": f"{model}@champion"}))
    assert lineage["version"] == "1" and lineage["run_id"] == mcp_registry.run_ids[0]
    assert {i["name"] for i in lineage["inputs"]} == {"X", "y"}
    assert lineage["decision"]["verdict"] == "promoted"
    by_number = data(call(server, "lineage", {"ref": model, "version": 2}))
    assert by_number["version"] == "2" and by_number["decision"] is None

    compared = data(call(server, "compare", {"name": model, "metric": "val_auc", "versions": [1]}))
    assert [v["version"] for v in compared["versions"]] == ["1"] and compared["best"] == "1"

    runs = data(
        call(
            server,
            "search_runs",
            {"experiment": mcp_registry.experiment, "filter": "metrics.val_auc > 0.8"},
        )
    )
    assert [r["run_id"] for r in runs["runs"]] == [mcp_registry.run_ids[1]]


def test_errors_are_one_readable_message(mcp_registry) -> None:
    server = build_server(tracking_uri=mcp_registry.uri)
    text = error_text(call(server, "list_versions", {"name": "no-such-model"}))
    assert "registered model 'no-such-model' not found" in text
    text = error_text(call(server, "lineage", {"ref": f"{mcp_registry.model}@nope"}))
    assert "has no alias 'nope'" in text
    text = error_text(call(build_server(tracking_uri="http://127.0.0.1:9"), "list_models", {}))
    assert "server not reachable" in text
    assert call(server, "compare", {"name": "m"}).is_error  # metric is required


def test_writes_refused_without_allow_writes(mcp_registry, store) -> None:
    server = build_server(tracking_uri=mcp_registry.uri)
    model = mcp_registry.model
    for name, arguments in {
        "promote": {"name": model, "version": 2},
        "rollback": {"name": model},
        "register_model": {"run_id": mcp_registry.run_ids[0]},
        "log_run": {"name": "agent", "metrics": {"auc": 0.5}},
    }.items():
        result = call(server, name, arguments)
        assert result.is_error and name in error_text(result)
    holder = store.client.get_model_version_by_alias(model, "champion")
    assert str(holder.version) == "1"
    assert not [r for r in store.runs() if r.info.run_name == "agent"]


def test_write_tools_with_allow_writes(store) -> None:
    from sklearn.tree import DecisionTreeClassifier

    server = build_server(allow_writes=True)  # on the configured store

    logged = data(
        call(
            server,
            "log_run",
            {"name": "agent", "params": {"lr": 0.1, "opt": "adam"}, "metrics": {"auc": 0.81}},
        )
    )
    assert logged["params"] == {"lr": "0.1", "opt": "adam"} and logged["metrics"] == {"auc": 0.81}
    assert store.run(logged["run_id"]).info.status == "FINISHED"

    X = np.arange(20.0).reshape(10, 2)
    run_ids = []
    for auc in (0.8, 0.9):
        with tracked.run("fit", register=False) as run:
            run.log_input(X, "X")
            run.log_metrics({"auc": auc})
            run.log_model(DecisionTreeClassifier().fit(X, X[:, 0] > 9))
        run_ids.append(run.run_id)
    name = f"mcp-agent-{store.experiment}"
    for i, run_id in enumerate(run_ids, start=1):
        registered = data(call(server, "register_model", {"run_id": run_id, "name": name}))
        assert registered == {
            "model": name,
            "version": str(i),
            "run_id": run_id,
            "source": registered["source"],
            "already_registered": False,
        }
    again = data(call(server, "register_model", {"run_id": run_ids[0]}))
    assert again["version"] == "1" and again["already_registered"] is True

    first = data(call(server, "promote", {"name": name, "version": 1}))
    assert first["promoted"] is True and first["to"] == "champion"
    second = data(call(server, "promote", {"name": name, "version": 2}))
    assert second["promoted"] is True and second["previous"] == "1"
    assert "REFUSED" not in second["summary"]
    back = data(call(server, "rollback", {"name": name}))
    assert back == {"model": name, "alias": "champion", "version": "1", "previous": "2"}
    assert str(store.client.get_model_version_by_alias(name, "champion").version) == "1"

    text = error_text(call(server, "promote", {"name": name, "version": 2, "policy": "nope"}))
    assert "MODULE:ATTRIBUTE" in text
    text = error_text(call(server, "register_model", {"run_id": logged["run_id"]}))
    assert "logged no model" in text


def test_stdio_server(mcp_registry) -> None:
    """`tracked mcp` over stdio: stdout carries only the protocol."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tracked.cli", "mcp", "--tracking-uri", mcp_registry.uri],
    )

    async def body(client: Client) -> tuple[set[str], Any]:
        listed = await client.list_tools()
        result = await client.call_tool("list_versions", {"name": mcp_registry.model})
        return {t.name for t in listed.tools}, result

    names, result = session(params, body)
    assert names == READ_TOOLS
    assert [v["version"] for v in data(result)["versions"]] == ["2", "1"]
