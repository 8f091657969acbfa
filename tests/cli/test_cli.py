"""The `tracked` command line against a real SQLite store populated by real tracked runs."""

from __future__ import annotations

import json
import re
import sys
import uuid
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

import tracked
from tracked.cli import cli
from tracked.ops import OPERATIONS

UNREACHABLE = "http://127.0.0.1:9"


Registry = Any  # tests/cli/conftest.py: Registry(uri, experiment, model, run_ids)


def invoke(*args: str, uri: str | None = None) -> Result:
    argv = ["--tracking-uri", uri, *args] if uri else list(args)
    return CliRunner().invoke(cli, argv)


def as_json(result: Result, code: int = 0) -> Any:
    """The one JSON document on stdout (nothing else there)."""
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def one_error_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("tracked: ")
    return lines[0]


# --------------------------------------------------------------------------- reads


def test_models(registry: Registry) -> None:
    data = as_json(invoke("models", "--json", uri=registry.uri))
    (model,) = [m for m in data["models"] if m["name"] == registry.model]
    assert model["versions"] == 3 and model["latest_version"] == "3"
    assert model["aliases"] == {"champion": "2"} and model["champion"] == "2"
    assert model["key_metric"] in ("train_acc", "val_auc")
    assert not any(m["name"].endswith(".tracked-lock") for m in data["models"])

    data = as_json(invoke("--json", "models", "--metric", "val_auc", uri=registry.uri))
    (model,) = [m for m in data["models"] if m["name"] == registry.model]
    assert model["key_metric"] == "val_auc" and model["champion_metric"] == pytest.approx(0.90)

    table = invoke("models", "-m", "val_auc", uri=registry.uri)
    assert table.exit_code == 0
    assert registry.model in table.stdout and "champion=v2" in table.stdout
    assert "v2 val_auc=0.9" in table.stdout


def test_versions(registry: Registry) -> None:
    data = as_json(invoke("versions", registry.model, "--json", uri=registry.uri))
    assert data["model"] == registry.model
    rows = data["versions"]
    assert [r["version"] for r in rows] == ["3", "2", "1"]
    assert rows[1]["aliases"] == ["champion"] and rows[0]["aliases"] == []
    assert rows[1]["metrics"]["val_auc"] == pytest.approx(0.90)
    assert rows[1]["decision"] == "promoted" and rows[0]["decision"] is None
    assert [r["run_id"] for r in rows] == registry.run_ids[::-1]
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{40}", row["git_commit"])
        assert isinstance(row["git_dirty"], bool)
        assert set(row["data"]) == {"X", "y"}
        assert all(d.startswith("xxh3-128:v1:") for d in row["data"].values())
        assert isinstance(row["created"], int)

    table = invoke("versions", registry.model, uri=registry.uri)
    assert table.exit_code == 0
    assert "champion" in table.stdout and rows[0]["git_commit"][:8] in table.stdout
    short = rows[0]["data"]["X"].rsplit(":", 1)[-1][:12]
    assert f"X={short}" in table.stdout


def test_show_by_alias_and_version(registry: Registry) -> None:
    data = as_json(invoke("show", f"{registry.model}@champion", "--json", uri=registry.uri))
    assert data["model"] == registry.model and data["version"] == "2"
    assert data["run_id"] == registry.run_ids[1] and data["aliases"] == ["champion"]
    assert {i["name"] for i in data["inputs"]} == {"X", "y"}
    assert data["inputs"][0]["shape"] in ([60, 3], [60])
    assert data["params"]["quality"] == "0.9"
    decision = data["decision"]
    assert decision["verdict"] == "promoted" and decision["to"] == "champion"
    assert [r["rule"] for r in decision["rules"]] == ["val_auc >= 0.85"]
    assert decision["rules"][0]["passed"] is True

    data = as_json(invoke("show", registry.model, "--version", "1", "--json", uri=registry.uri))
    assert data["version"] == "1" and data["decision"] is None

    text = invoke("show", f"{registry.model}@champion", uri=registry.uri)
    assert text.exit_code == 0
    assert f"{registry.model} v2" in text.stdout
    assert "decision promoted for champion" in text.stdout
    assert "pass  val_auc >= 0.85" in text.stdout


def test_compare_and_best(registry: Registry) -> None:
    name, uri = registry.model, registry.uri
    data = as_json(invoke("compare", name, "--metric", "val_auc", "--json", uri=uri))
    assert [r["version"] for r in data["versions"]] == ["2", "3", "1"]
    assert data["best"] == "2" and data["higher_is_better"] is True

    data = as_json(
        invoke("compare", name, "--versions", "1", "3", "-m", "val_auc", "--json", uri=uri)
    )
    assert [r["version"] for r in data["versions"]] == ["3", "1"] and data["best"] == "3"

    data = as_json(invoke("compare", name, "-m", "val_auc", "--lower-is-better", "--json", uri=uri))
    assert data["best"] == "1"

    table = invoke("compare", name, "-m", "val_auc", uri=uri)
    assert table.exit_code == 0
    best_line = next(line for line in table.stdout.splitlines() if "best" in line.split())
    assert "v2" in best_line and "0.9" in best_line

    data = as_json(invoke("best", name, "-m", "val_auc", "--json", uri=uri))
    assert data["version"]["version"] == "2" and data["version"]["aliases"] == ["champion"]
    text = invoke("best", name, "-m", "val_auc", uri=uri)
    assert text.stdout.strip() == f"{name} v2 (champion): val_auc=0.9"

    error = one_error_line(invoke("best", name, "-m", "nope", uri=uri))
    assert "logged metric 'nope'" in error


def test_runs(registry: Registry) -> None:
    args = ("runs", "--experiment", registry.experiment, "--json")
    data = as_json(invoke(*args, uri=registry.uri))
    assert [r["run_id"] for r in data["runs"]] == registry.run_ids[::-1]
    assert data["runs"][0]["model"] == registry.model and data["runs"][0]["model_version"] == "3"

    data = as_json(invoke(*args, "--filter", "metrics.val_auc > 0.82", uri=registry.uri))
    assert {r["run_id"] for r in data["runs"]} == set(registry.run_ids[1:])
    data = as_json(invoke(*args, "--limit", "1", uri=registry.uri))
    assert [r["run_id"] for r in data["runs"]] == [registry.run_ids[2]]

    table = invoke("runs", "-e", registry.experiment, uri=registry.uri)
    assert table.exit_code == 0 and registry.run_ids[0] in table.stdout

    error = one_error_line(invoke(*args, "--filter", "metrics.val_auc >>> 1", uri=registry.uri))
    assert "invalid filter" in error
    error = one_error_line(invoke("runs", "-e", "no-such-experiment", uri=registry.uri))
    assert "experiment 'no-such-experiment' not found" in error


# --------------------------------------------------------------------------- writes


POLICY_MODULE = """
from tracked import PromotionPolicy, metric

strict = PromotionPolicy(to="champion", when=[metric("val_auc") >= 0.95])
"""


def test_promote_rollback_gc(store, trainer, tmp_path, monkeypatch) -> None:
    """On the configured store (no --tracking-uri): the `store` fixture's configure()."""
    model = f"cli-writes-{uuid.uuid4().hex[:8]}"
    trainer(model, [0.7, 0.8, 0.9])
    module = f"policies_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(POLICY_MODULE)
    monkeypatch.setattr(sys, "path", list(sys.path))

    data = as_json(invoke("promote", model, "1", "--json"))
    assert data["promoted"] is True and data["rules"] == [] and data["previous"] is None

    refused = invoke("promote", model, "3", "--policy", f"{module}:strict", "--json")
    data = as_json(refused, code=1)
    assert data["promoted"] is False and data["forced"] is False
    assert data["rules"][0]["rule"] == "val_auc >= 0.95" and data["rules"][0]["passed"] is False
    assert data["summary"].startswith(f"{model} v3 -> champion: REFUSED")
    assert str(store.client.get_model_version_by_alias(model, "champion").version) == "1"

    text = invoke("promote", model, "3", "--policy", f"{module}:strict")
    assert text.exit_code == 1
    assert "REFUSED" in text.stdout and "FAIL  val_auc >= 0.95" in text.stdout

    forced = as_json(
        invoke("promote", model, "3", "--policy", f"{module}:strict", "--force", "--json")
    )
    assert forced["promoted"] is True and forced["forced"] is True
    assert str(store.client.get_model_version_by_alias(model, "champion").version) == "3"

    data = as_json(invoke("rollback", model, "--json"))
    assert data == {"model": model, "alias": "champion", "version": "1", "previous": "3"}
    text = invoke("rollback", model)
    assert one_error_line(text).startswith("tracked: alias 'champion'")

    data = as_json(invoke("gc", model, "--keep", "1", "--json"))
    assert data["dry_run"] is True and data["deleted"] == ["2"]
    assert data["kept"] == ["3"] and data["protected"] == ["1"]
    text = invoke("gc", model, "--keep", "1")
    assert "would delete v2" in text.stdout and "--delete" in text.stdout
    assert len(store.client.search_model_versions(f"name = '{model}'")) == 3
    data = as_json(invoke("gc", model, "--keep", "1", "--delete", "--json"))
    assert data["dry_run"] is False and data["deleted"] == ["2"]
    assert len(store.client.search_model_versions(f"name = '{model}'")) == 2

    usage = invoke("promote", model, "3", "--policy", f"{module}:missing")
    assert usage.exit_code == 2 and "has no 'missing'" in usage.stderr
    usage = invoke("promote", model, "3", "--policy", "no_colon")
    assert usage.exit_code == 2 and "MODULE:ATTRIBUTE" in usage.stderr


def test_log_and_register(store) -> None:
    from sklearn.tree import DecisionTreeClassifier

    argv = ["log", "manual", "-p", "lr=0.1", "-p", "depth=3", "-m", "auc=0.7", "--json"]
    data = as_json(invoke(*argv))
    logged = data["run_id"]
    assert data["params"] == {"lr": "0.1", "depth": "3"} and data["metrics"] == {"auc": 0.7}
    assert data["experiment"] == store.experiment and data["status"] == "FINISHED"
    assert store.run(data["run_id"]).data.metrics == {"auc": 0.7}
    usage = invoke("log", "manual", "-m", "auc=high")
    assert usage.exit_code == 2 and "not a number" in usage.stderr

    X = np.arange(20.0).reshape(10, 2)
    with tracked.run("unregistered", register=False) as run:
        run.log_input(X, "X")
        run.log_metrics({"acc": 0.5})
        run.log_model(DecisionTreeClassifier().fit(X, X[:, 0] > 9))
    name = f"cli-registered-{uuid.uuid4().hex[:8]}"
    data = as_json(invoke("register", run.run_id, "--name", name, "--json"))
    assert data["model"] == name and data["version"] == "1"
    assert data["already_registered"] is False
    version = store.client.get_model_version(name, "1")
    assert version.run_id == run.run_id and version.tags["tracked.metric.acc"] == "0.5"
    assert version.tags["tracked.data.X"].startswith("xxh3-128:v1:")
    data = as_json(invoke("register", run.run_id, "--json"))
    assert data["version"] == "1" and data["already_registered"] is True
    loaded = tracked.load_model(name, version=1)
    assert type(loaded) is DecisionTreeClassifier

    assert "the run logged no model" in one_error_line(invoke("register", logged))
    assert "not found" in one_error_line(invoke("register", "0" * 32))


# --------------------------------------------------------------------------- doctor, ui, sync


def test_doctor(store) -> None:
    data = as_json(invoke("doctor", "--json"))
    assert data["ok"] is True
    config = {c["name"]: c for c in data["config"]}
    assert config["tracking_uri"]["value"] == store.uri
    assert config["tracking_uri"]["origin"] == "configure()"
    assert config["spool_dir"]["origin"].startswith("env TRACKED_SPOOL_DIR")
    checks = {c["name"]: c for c in data["checks"]}
    assert {"tracking store", "scratch run", "artifact store", "git"} <= set(checks)
    assert all(c["ok"] is not False for c in checks.values())
    assert "mlartifacts" in checks["artifact store"]["detail"]
    text = invoke("doctor")
    assert text.exit_code == 0
    assert re.search(r"^ok\s+scratch run: created and deleted a run", text.stdout, re.M)
    assert "configure()" in text.stdout

    down = invoke("doctor", "--json", uri=UNREACHABLE)
    data = as_json(down, code=1)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["tracking store"]["ok"] is False
    assert "not reachable" in checks["tracking store"]["detail"]
    assert checks["tracking store"]["fix"] and checks["scratch run"]["ok"] is None
    text = invoke("doctor", uri=UNREACHABLE)
    assert text.exit_code == 1
    assert re.search(r"^FAIL tracking store: http://127.0.0.1:9", text.stdout, re.M)
    assert re.search(r"^\s+fix: start the server", text.stdout, re.M)


def test_ui(store, monkeypatch) -> None:
    text = invoke("ui", uri="http://mlflow.internal:5000")
    assert text.exit_code == 0 and "http://mlflow.internal:5000" in text.stdout

    started: list[list[str]] = []
    monkeypatch.setattr("tracked.cli.subprocess.call", lambda cmd: started.append(cmd) or 0)
    text = invoke("ui", "--port", "5123")
    assert text.exit_code == 0 and "http://localhost:5123" in text.stdout
    (command,) = started
    assert command[1:4] == ["-m", "mlflow", "ui"]
    assert command[command.index("--backend-store-uri") + 1] == store.uri
    assert command[command.index("--port") + 1] == "5123"


def test_sync(store) -> None:
    data = as_json(invoke("sync", "--dry-run", "--json"))
    assert data["dry_run"] is True and data["entries"] == [] and data["ok"] is True
    text = invoke("sync", "--dry-run")
    assert text.exit_code == 0 and "nothing to sync" in text.stdout


# --------------------------------------------------------------------------- errors and usage


def test_error_lines(registry: Registry, tmp_path) -> None:
    uri = registry.uri
    error = one_error_line(invoke("versions", "no-such-model", uri=uri))
    assert error == (
        "tracked: registered model 'no-such-model' not found (list them with `tracked models`)"
    )
    error = one_error_line(invoke("show", f"{registry.model}@nope", uri=uri))
    assert "has no alias 'nope'" in error
    error = one_error_line(invoke("show", registry.model, "--version", "99", uri=uri))
    assert "version 99 not found" in error

    for command in (["models"], ["versions", "m"], ["runs"], ["show", "m@champion"]):
        result = invoke(*command, uri=UNREACHABLE)
        assert "server not reachable" in one_error_line(result)
        assert result.stdout == ""
    data = as_json(invoke("models", "--json", uri=UNREACHABLE), code=1)
    assert data["type"] == "StoreUnavailableError" and "not reachable" in data["error"]

    missing = f"sqlite:///{(tmp_path / 'none.db').as_posix()}"
    assert "no database at" in one_error_line(invoke("models", uri=missing))
    assert not (tmp_path / "none.db").exists()

    debug = invoke("--debug", "models", uri=UNREACHABLE)
    assert debug.exit_code == 1 and isinstance(debug.exception, tracked.StoreUnavailableError)


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["compare", "m"],  # --metric is required
        ["promote", "m", "not-a-number"],
        ["gc", "m"],  # --keep is required
        ["versions"],
        ["runs", "--limit", "many"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = invoke(*argv)
    assert result.exit_code == 2, result.stdout
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_every_operation_is_a_command_with_help() -> None:
    for op in OPERATIONS:
        if op.command is None:
            continue
        result = invoke(op.command, "--help")
        assert result.exit_code == 0, op.command
        assert op.summary in " ".join(result.stdout.split())
        for declared in op.parameters():
            assert " ".join(declared.param.help.split()[:3]) in " ".join(result.stdout.split())
        assert "--json" in result.stdout
