"""The MCP server: tools generated from tracked.ops, called through the mcp client."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client, StdioServerParameters

import tracked
from tracked.mcp import build_server
from tracked.ops import OPERATIONS

READ_TOOLS = {
    "search_runs",
    "list_models",
    "list_versions",
    "best_version",
    "lineage",
    "compare",
    "diff",
}
WRITE_TOOLS = {"promote", "rollback", "register_model", "log_run"}
REPOSITORY = Path(__file__).resolve().parents[2]


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


def stdio(*args: str, cwd: Path | None = None) -> StdioServerParameters:
    """`tracked mcp` as a subprocess of this checkout (PYTHONPATH: the client passes only a few
    variables on by default)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("HOME", "PATH", "TRACKED_"))}
    env["PYTHONPATH"] = str(REPOSITORY)
    return StdioServerParameters(
        command=sys.executable, args=["-m", "tracked.cli", "mcp", *args], env=env, cwd=cwd
    )


def test_tools_listed_with_schemas_from_the_operations(mcp_registry) -> None:
    tools = session(build_server(), lambda client: client.list_tools()).tools
    assert {t.name for t in tools} == READ_TOOLS | WRITE_TOOLS
    refused = {t.name for t in tools if t.description.startswith("REFUSED on this read-only")}
    assert refused == WRITE_TOOLS
    writable = session(build_server(allow_writes=True), lambda c: c.list_tools()).tools
    assert {t.name for t in writable} == READ_TOOLS | WRITE_TOOLS
    assert not any(t.description.startswith("REFUSED") for t in writable)

    ops = {op.tool: op for op in OPERATIONS if op.tool}
    for tool in writable:
        op = ops[tool.name]
        assert tool.description.startswith(op.doc)
        declared = {d.name: d for d in op.parameters() if d.param.tool}
        properties = tool.input_schema["properties"]
        assert set(properties) == set(declared), tool.name
        for name, d in declared.items():
            assert properties[name]["description"] == d.param.help
        required = {n for n, d in declared.items() if d.required}
        assert set(tool.input_schema.get("required", [])) == required
        assert tool.annotations.read_only_hint is (tool.name in READ_TOOLS)
    promote = next(t for t in writable if t.name == "promote")
    # overrides stay human: no force, and no policy an agent could pick
    assert {"force", "policy"}.isdisjoint(promote.input_schema["properties"])
    assert "configured for the alias" in promote.description
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

    best = data(call(server, "best_version", {"name": model}))
    assert best["version"]["version"] == "2" and best["metric"] == "val_auc"
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

    diff = data(call(server, "diff", {"a": f"{model}/1", "b": "2"}))
    assert {m["name"]: m["verdict"] for m in diff["metrics"]} == {"val_auc": "better"}

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
    text = error_text(call(server, "lineage", {"ref": f"{mcp_registry.model}@champoin"}))
    assert "has no alias 'champoin'" in text and "did you mean 'champion'?" in text
    text = error_text(call(server, "compare", {"name": mcp_registry.model, "metric": "val_acu"}))
    assert "did you mean 'val_auc'?" in text
    text = error_text(call(build_server(tracking_uri="http://127.0.0.1:9"), "list_models", {}))
    assert "not reachable" in text


def test_writes_refused_without_allow_writes(mcp_registry, store) -> None:
    server = build_server(tracking_uri=mcp_registry.uri)
    model = mcp_registry.model
    for name, arguments in {
        "promote": {"name": model, "version": 2},
        "rollback": {"name": model},
        "register_model": {"run_id": mcp_registry.run_ids[0]},
        "log_run": {"name": "agent", "metrics": {"auc": 0.5}},
    }.items():
        text = error_text(call(server, name, arguments))
        assert f"`{name}` changes the store and this server is read-only" in text
        assert "tracked mcp --allow-writes" in text
    holder = store.client.get_model_version_by_alias(model, "champion")
    assert str(holder.version) == "1"
    assert not [r for r in store.runs() if r.info.run_name == "agent"]


POLICIES = """
from tracked import PromotionPolicy, metric

print("policies imported")  # must not reach the MCP protocol stream
champion = PromotionPolicy(to="champion", when=[metric("auc").beats("champion")])
"""


def configured_policy(folder: Path) -> None:
    """A project folder whose pyproject.toml names a champion policy in agent_rules.py."""
    (folder / "agent_rules.py").write_text(POLICIES)
    (folder / "pyproject.toml").write_text(
        '[tool.tracked.policies]\nchampion = "agent_rules:champion"\n'
    )


def test_write_tools_with_allow_writes(store, tmp_path, monkeypatch) -> None:
    from sklearn.tree import DecisionTreeClassifier

    configured_policy(tmp_path)  # tmp_path is the working directory
    monkeypatch.setattr(sys, "path", list(sys.path))
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
    for auc in (0.8, 0.9, 0.7):
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
    assert first["policy"] == "policies.champion = agent_rules:champion"
    second = data(call(server, "promote", {"name": name, "version": 2}))
    assert second["promoted"] is True and second["previous"] == "1"
    # the configured policy judges the agent's promotion: a worse version is refused
    worse = data(call(server, "promote", {"name": name, "version": 3}))
    assert worse["promoted"] is False and worse["forced"] is False
    assert str(store.client.get_model_version_by_alias(name, "champion").version) == "2"
    back = data(call(server, "rollback", {"name": name}))
    assert back == {"model": name, "alias": "champion", "version": "1", "previous": "2"}

    text = error_text(call(server, "promote", {"name": name, "version": 2, "to": "staging"}))
    assert "no promotion policy is configured for alias 'staging'" in text
    assert store.client.get_registered_model(name).aliases.get("staging") is None
    text = error_text(call(server, "register_model", {"run_id": logged["run_id"]}))
    assert "logged no model" in text


def test_stdio_server(mcp_registry) -> None:
    """`tracked mcp` over stdio: stdout carries only the protocol; writes listed as refused."""

    async def body(client: Client) -> tuple[set[str], Any, Any]:
        listed = await client.list_tools()
        result = await client.call_tool("list_versions", {"name": mcp_registry.model})
        refused = await client.call_tool("promote", {"name": mcp_registry.model, "version": 2})
        return {t.name for t in listed.tools}, result, refused

    names, result, refused = session(stdio("--tracking-uri", mcp_registry.uri), body)
    assert names == READ_TOOLS | WRITE_TOOLS
    assert [v["version"] for v in data(result)["versions"]] == ["2", "1"]
    assert "read-only" in error_text(refused)


def test_stdio_promotion_is_judged_by_the_configured_policy(store, tmp_path) -> None:
    """A real client over stdio; the policy module prints at import: the protocol survives."""
    configured_policy(tmp_path)
    name = f"mcp-stdio-{store.experiment}"
    X = np.arange(20.0).reshape(10, 2)
    from sklearn.tree import DecisionTreeClassifier

    for auc in (0.9, 0.6):
        with tracked.run("fit", model_name=name) as run:
            run.log_metrics({"auc": auc})
            run.log_model(DecisionTreeClassifier().fit(X, X[:, 0] > 9))

    async def body(client: Client) -> list[Any]:
        return [
            await client.call_tool("promote", {"name": name, "version": version})
            for version in (1, 2)
        ]

    first, second = session(
        stdio("--allow-writes", "--tracking-uri", store.uri, cwd=tmp_path), body
    )
    assert data(first)["promoted"] is True
    refused = data(second)
    assert refused["promoted"] is False and "auc" in refused["rules"][0]["rule"]
    assert str(store.client.get_model_version_by_alias(name, "champion").version) == "1"


def test_without_the_mcp_package_the_error_names_the_extra() -> None:
    """The package is made unimportable in a child process (sys.modules["mcp"] = None): what
    a Python without `tracked[mcp]` installed sees."""
    import subprocess

    code = "import sys; sys.modules['mcp'] = None\nfrom tracked.cli import main\nmain(['mcp'])\n"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)

    assert done.returncode == 1
    assert "pip install 'tracked[mcp]'" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
