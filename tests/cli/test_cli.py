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
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

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


def tsv(result: Result) -> list[dict[str, str]]:
    """Piped output: a header line, then one tab-separated line per row."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    header, *rows = result.stdout.rstrip("\n").split("\n")
    names = header.split("\t")
    return [dict(zip(names, row.split("\t"), strict=True)) for row in rows]


# --------------------------------------------------------------------------- reads


def test_models_rank_the_champion_by_a_chosen_key_metric(registry: Registry) -> None:
    data = as_json(invoke("models", "--json", uri=registry.uri))
    (model,) = [m for m in data["models"] if m["name"] == registry.model]
    assert model["versions"] == 3 and model["latest_version"] == "3"
    assert model["aliases"] == {"champion": "2"} and model["champion"] == "2"
    # not the alphabetically first metric (latency_ms): a well-known quality metric
    assert model["key_metric"] == {
        "name": "val_auc",
        "higher_is_better": True,
        "chosen_by": "well-known name",
        "direction_by": "name (auc)",
    }
    assert model["champion_metric"] == pytest.approx(0.90)
    assert ISO.fullmatch(model["updated"])
    assert not any(m["name"].endswith(".tracked-lock") for m in data["models"])

    data = as_json(invoke("--json", "models", "--metric", "rmse", uri=registry.uri))
    (model,) = [m for m in data["models"] if m["name"] == registry.model]
    assert model["key_metric"]["name"] == "rmse" and model["key_metric"]["chosen_by"] == "argument"
    assert model["key_metric"]["higher_is_better"] is False
    assert model["champion_metric"] == pytest.approx(0.10)

    (row,) = [r for r in tsv(invoke("models", uri=registry.uri)) if r["model"] == registry.model]
    assert row["champion"] == "v2" and row["value"] == "0.9" and row["better"] == "higher"
    assert row["key metric"] == "val_auc" and row["aliases"] == "champion=v2"


def test_versions_carry_flavor_times_and_refused_wording(registry: Registry) -> None:
    data = as_json(invoke("versions", registry.model, "--json", uri=registry.uri))
    assert data["model"] == registry.model and data["key_metric"]["name"] == "val_auc"
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
        assert ISO.fullmatch(row["created"])
        assert row["flavor"] == "sklearn"

    table = tsv(invoke("versions", registry.model, uri=registry.uri))
    assert [r["version"] for r in table] == ["v3", "v2", "v1"]
    # the estimator's class, written by the run pipeline (the flavor when no class is known)
    assert table[1]["aliases"] == "champion" and table[1]["model"] == "LogisticRegression"
    assert table[0]["commit"] == rows[0]["git_commit"]  # piped: whole, as in --json
    assert table[0]["created"] == rows[0]["created"]
    assert f"X={rows[0]['data']['X']}" in table[0]["data"]
    for metric in ("val_auc", "rmse", "latency_ms", "train_acc", "tree_depth"):
        assert metric in table[0]


def test_a_refused_decision_reads_refused_everywhere(store, trainer) -> None:
    from tracked import PromotionPolicy, metric
    from tracked.registry.lifecycle import promote

    model = f"cli-refused-{uuid.uuid4().hex[:8]}"
    trainer(model, [0.5])
    policy = PromotionPolicy(to="champion", when=[metric("val_auc") >= 0.9])
    assert not promote(model, 1, policy=policy).promoted

    (row,) = as_json(invoke("versions", model, "--json"))["versions"]
    assert row["decision"] == "refused"
    assert as_json(invoke("show", f"{model}/1", "--json"))["decision"]["verdict"] == "refused"
    assert tsv(invoke("versions", model))[0]["decision"] == "refused"


def test_show_by_alias_version_and_run_id(registry: Registry) -> None:
    data = as_json(invoke("show", f"{registry.model}@champion", "--json", uri=registry.uri))
    assert data["kind"] == "version" and data["flavor"] == "sklearn"
    assert data["model"] == registry.model and data["version"] == "2"
    assert data["run_id"] == registry.run_ids[1] and data["aliases"] == ["champion"]
    assert {i["name"] for i in data["inputs"]} == {"X", "y"}
    assert data["inputs"][0]["shape"] in ([60, 3], [60])
    assert data["params"]["quality"] == "0.9"
    assert ISO.fullmatch(data["created"])
    decision = data["decision"]
    assert decision["verdict"] == "promoted" and decision["to"] == "champion"
    assert [r["rule"] for r in decision["rules"]] == ["val_auc >= 0.85"]
    assert decision["rules"][0]["passed"] is True and ISO.fullmatch(decision["evaluated_at"])

    data = as_json(invoke("show", f"{registry.model}/1", "--json", uri=registry.uri))
    assert data["version"] == "1" and data["decision"] is None
    data = as_json(invoke("show", registry.model, "--version", "1", "--json", uri=registry.uri))
    assert data["version"] == "1"

    run = as_json(invoke("show", registry.run_ids[0], "--json", uri=registry.uri))
    assert run["kind"] == "run" and run["run_id"] == registry.run_ids[0]
    assert run["model"] == registry.model and run["model_version"] == "1"
    assert run["experiment"] == registry.experiment and set(run["inputs"]) == {"X", "y"}
    assert ISO.fullmatch(run["start_time"]) and ISO.fullmatch(run["end_time"])

    text = invoke("show", f"{registry.model}@champion", uri=registry.uri)
    assert text.exit_code == 0
    assert f"{registry.model} v2" in text.stdout
    assert "decision promoted for champion" in text.stdout
    assert "pass  val_auc >= 0.85" in text.stdout


def test_compare_ranks_by_the_key_metric_and_its_direction(registry: Registry) -> None:
    name, uri = registry.model, registry.uri
    data = as_json(invoke("compare", name, "--json", uri=uri))
    assert data["metric"] == "val_auc" and data["key_metric"]["chosen_by"] == "well-known name"
    assert [r["version"] for r in data["versions"]] == ["2", "3", "1"]
    assert data["best"] == "2" and data["higher_is_better"] is True

    rmse = as_json(invoke("compare", name, "-m", "rmse", "--json", uri=uri))
    assert rmse["higher_is_better"] is False and rmse["key_metric"]["direction_by"] == "name (rmse)"
    assert [r["version"] for r in rmse["versions"]] == ["2", "3", "1"] and rmse["best"] == "2"

    data = as_json(
        invoke("compare", name, "--versions", "1", "3", "-m", "val_auc", "--json", uri=uri)
    )
    assert [r["version"] for r in data["versions"]] == ["3", "1"] and data["best"] == "3"

    data = as_json(invoke("compare", name, "-m", "val_auc", "--lower-is-better", "--json", uri=uri))
    assert data["best"] == "1" and data["key_metric"]["direction_by"] == "argument"

    table = invoke("compare", name, "-m", "rmse", uri=uri)
    rows = tsv(table)
    assert rows[0][""] == "best" and rows[0]["version"] == "v2" and rows[0]["rmse"] == repr(1 - 0.9)
    assert rows[0]["model"] == "LogisticRegression"


def test_best_says_which_metric_and_which_way(registry: Registry) -> None:
    name, uri = registry.model, registry.uri
    data = as_json(invoke("best", name, "--json", uri=uri))
    assert data["version"]["version"] == "2" and data["version"]["aliases"] == ["champion"]
    assert data["metric"] == "val_auc" and data["higher_is_better"] is True
    data = as_json(invoke("best", name, "-m", "latency_ms", "--json", uri=uri))
    assert data["version"]["version"] == "1" and data["higher_is_better"] is False
    text = invoke("best", name, "-m", "val_auc", uri=uri)
    assert text.stdout.strip() == f"{name} v2 (champion): val_auc=0.9"
    assert "higher is better" in text.stderr  # the note: on stderr when piped


@pytest.mark.parametrize("command", ["compare", "best"])
def test_a_misspelt_metric_is_a_usage_error_with_a_suggestion(
    registry: Registry, command: str
) -> None:
    result = invoke(command, registry.model, "-m", "val_acu", uri=registry.uri)
    error = one_error_line(result, code=2)
    assert "'val_acu'" in error and "did you mean 'val_auc'?" in error
    data = as_json(invoke(command, registry.model, "-m", "val_acu", "--json", uri=registry.uri), 2)
    assert data["type"] == "InputError" and data["exit_code"] == 2


def test_runs(registry: Registry) -> None:
    args = ("runs", "--experiment", registry.experiment, "--json")
    data = as_json(invoke(*args, uri=registry.uri))
    assert [r["run_id"] for r in data["runs"]] == registry.run_ids[::-1]
    assert data["runs"][0]["model"] == registry.model and data["runs"][0]["model_version"] == "3"
    assert data["runs"][0]["flavor"] == "sklearn" and ISO.fullmatch(data["runs"][0]["start_time"])
    assert data["other_experiments"] == []  # asked for one experiment: no remark

    data = as_json(invoke(*args, "--filter", "metrics.val_auc > 0.82", uri=registry.uri))
    assert {r["run_id"] for r in data["runs"]} == set(registry.run_ids[1:])
    data = as_json(invoke(*args, "--limit", "1", uri=registry.uri))
    assert [r["run_id"] for r in data["runs"]] == [registry.run_ids[2]]

    rows = tsv(invoke("runs", "-e", registry.experiment, uri=registry.uri))
    assert [r["run id"] for r in rows] == registry.run_ids[::-1]
    assert rows[0]["status"] == "FINISHED"

    error = one_error_line(invoke("runs", "-e", registry.experiment[:-1], uri=registry.uri))
    assert f"did you mean '{registry.experiment}'?" in error


def test_runs_without_experiment_says_where_other_runs_are(registry: Registry) -> None:
    result = invoke("runs", uri=registry.uri)  # the configured experiment: the temp dir's name
    assert result.exit_code == 0
    assert "other experiments hold runs too" in result.stderr
    assert registry.experiment in result.stderr
    data = as_json(invoke("runs", "--json", uri=registry.uri))
    assert registry.experiment in data["other_experiments"]


def test_diff_of_two_versions(registry: Registry) -> None:
    data = as_json(invoke("diff", f"{registry.model}/1", "2", "--json", uri=registry.uri))
    assert data["a"]["version"] == "1" and data["b"]["version"] == "2"
    assert {c["name"]: c["change"] for c in data["params"]} == {
        "C": "changed",
        "quality": "changed",
        "step": "changed",
    }
    assert {c["name"]: c["change"] for c in data["data"]} == {"X": "same", "y": "same"}
    metrics = {m["name"]: m for m in data["metrics"]}
    assert data["metrics"][0]["name"] == "val_auc"  # the key metric first
    assert metrics["val_auc"]["verdict"] == "better"
    assert metrics["rmse"]["verdict"] == "better" and metrics["rmse"]["higher_is_better"] is False
    assert metrics["rmse"]["delta"] == pytest.approx(-0.1)
    assert metrics["latency_ms"]["verdict"] == "worse"
    assert data["code"]["same"] is True and data["code"]["log"] == []

    text = invoke("diff", f"{registry.model}@champion", f"{registry.model}/3", uri=registry.uri)
    assert text.exit_code == 0 and "same commit" in text.stdout

    runs = as_json(invoke("diff", *registry.run_ids[:2], "--json", uri=registry.uri))
    assert runs["a"]["kind"] == "run" and runs["b"]["run_id"] == registry.run_ids[1]


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
    assert data["policy"] is None and ISO.fullmatch(data["evaluated_at"])

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

    usage = invoke("promote", model, "3", "--policy", f"{module}:strickt")
    assert usage.exit_code == 2 and "has no 'strickt' (did you mean 'strict'?)" in usage.stderr
    usage = invoke("promote", model, "3", "--policy", "no_colon")
    assert usage.exit_code == 2 and "MODULE:ATTRIBUTE" in usage.stderr


def test_promote_with_a_stage(store, trainer) -> None:
    model = f"cli-stage-{uuid.uuid4().hex[:8]}"
    trainer(model, [0.7])
    data = as_json(invoke("promote", model, "1", "--stage", "production", "--json"))
    assert data["promoted"] is True
    assert store.client.get_model_version(model, "1").current_stage == "Production"
    usage = invoke("promote", model, "1", "--stage", "prod")
    assert usage.exit_code == 2 and "did you mean 'production'?" in usage.stderr


CONFIGURED = """
from tracked import PromotionPolicy, metric

print("a policy module that prints when imported")
prod = PromotionPolicy(to="prod", when=[metric("rmse", higher_is_better=False).beats("prod")])
"""


def test_the_projects_champion_alias_and_policy_are_honoured(
    store, trainer, tmp_path, monkeypatch
) -> None:
    model = f"cli-prod-{uuid.uuid4().hex[:8]}"
    trainer(model, [0.9, 0.8])  # v2 is worse: its rmse is higher
    (tmp_path / "prod_rules.py").write_text(CONFIGURED)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.tracked]\nchampion_alias = "prod"\n\n[tool.tracked.policies]\n'
        'prod = "prod_rules:prod"\n'
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "prod_rules", None)  # imported fresh by this test
    del sys.modules["prod_rules"]

    first = as_json(invoke("promote", model, "1", "--json"))  # no --to: the champion alias
    assert first["to"] == "prod" and first["promoted"] is True
    assert first["policy"] == "policies.prod = prod_rules:prod"
    worse = invoke("promote", model, "2", "--json")
    data = as_json(worse, code=1)
    assert data["promoted"] is False and "rmse" in data["rules"][0]["rule"]
    assert "a policy module that prints" not in worse.stdout  # stdout holds the JSON only

    (row,) = [m for m in as_json(invoke("models", "--json"))["models"] if m["name"] == model]
    assert row["champion_alias"] == "prod" and row["champion"] == "1"
    assert row["key_metric"]["name"] == "rmse"  # the policy's first metric rule
    assert row["key_metric"]["chosen_by"] == "policy for 'prod'"
    assert row["key_metric"]["higher_is_better"] is False
    data = as_json(invoke("compare", model, "--json"))
    assert data["metric"] == "rmse" and data["best"] == "1"


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
    with tracked.run("exists", register=False):
        pass  # the store's database exists from here on
    data = as_json(invoke("doctor", "--json"))
    assert data["ok"] is True
    config = {c["name"]: c for c in data["config"]}
    assert config["tracking_uri"]["value"] == store.uri
    assert config["tracking_uri"]["origin"] == "configure()"
    assert config["spool_dir"]["origin"].startswith("env TRACKED_SPOOL_DIR")
    assert config["champion_alias"]["value"] == "champion"
    checks = {c["name"]: c for c in data["checks"]}
    assert {"configuration", "tracking store", "registry", "experiment", "git"} <= set(checks)
    assert all(c["ok"] is not False for c in checks.values())
    text = invoke("doctor")
    assert text.exit_code == 0
    assert re.search(r"^ok\s+tracking store: SQLite database .* is writable", text.stdout, re.M)
    assert "configure()" in text.stdout

    down = invoke("doctor", "--json", uri=UNREACHABLE)
    data = as_json(down, code=1)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["tracking store"]["ok"] is False
    assert "not reachable" in checks["tracking store"]["detail"]
    assert checks["tracking store"]["fix"] and checks["registry"]["ok"] is None
    text = invoke("doctor", uri=UNREACHABLE)
    assert text.exit_code == 1
    assert re.search(
        r"^FAIL tracking store: http://127.0.0.1:9: server not reachable", text.stdout, re.M
    )
    assert re.search(r"^\s+fix: check the URI", text.stdout, re.M)


def test_ui_on_a_server_store_prints_its_url() -> None:
    text = invoke("ui", uri="http://mlflow.internal:5000")
    assert text.exit_code == 0 and "http://mlflow.internal:5000" in text.stdout


def test_ui_plan_runs_one_worker_without_jobs(store) -> None:
    data = as_json(invoke("ui", "--port", "5123", "--json"))
    command = data["command"]
    assert data["url"] == "http://localhost:5123"
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--backend-store-uri") + 1] == store.uri
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--workers") + 1] == "1"
    assert data["env"] == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def test_sync(store) -> None:
    data = as_json(invoke("sync", "--dry-run", "--json"))
    assert data["dry_run"] is True and data["entries"] == [] and data["ok"] is True
    text = invoke("sync", "--dry-run")
    assert text.exit_code == 0 and "nothing to sync" in text.stdout


# --------------------------------------------------------------------------- errors


def test_error_lines_name_the_fix(registry: Registry, tmp_path) -> None:
    uri = registry.uri
    error = one_error_line(invoke("versions", "no-such-model", uri=uri))
    assert error == (
        "tracked: registered model 'no-such-model' not found (list them with `tracked models`)"
    )
    error = one_error_line(invoke("versions", registry.model[:-1], uri=uri))
    assert f"(did you mean '{registry.model}'? list them with `tracked models`)" in error
    error = one_error_line(invoke("show", f"{registry.model}@champoin", uri=uri))
    assert "has no alias 'champoin'" in error and "did you mean 'champion'?" in error
    error = one_error_line(invoke("show", f"{registry.model}/99", uri=uri))
    assert "version 99 not found (its versions are 1 to 3)" in error
    error = one_error_line(invoke("show", f"{registry.model}:2", uri=uri), code=2)
    assert f"use {registry.model}/2 for a version" in error and "store" not in error

    for command in (["models"], ["versions", "m"], ["runs"], ["show", "m@champion"]):
        result = invoke(*command, uri=UNREACHABLE)
        assert "not reachable" in one_error_line(result)
        assert result.stdout == ""
    data = as_json(invoke("models", "--json", uri=UNREACHABLE), code=1)
    assert data["type"] == "StoreUnavailableError" and "not reachable" in data["error"]

    missing = f"sqlite:///{(tmp_path / 'none.db').as_posix()}"
    assert "no database at" in one_error_line(invoke("models", uri=missing))
    assert not (tmp_path / "none.db").exists()

    typo = one_error_line(invoke("models", uri="htp://127.0.0.1:5000"), code=2)
    assert "did you mean 'http'?" in typo and "failed" not in typo

    debug = invoke("--debug", "models", uri=UNREACHABLE)
    assert debug.exit_code == 1 and isinstance(debug.exception, tracked.StoreUnavailableError)


def test_every_operation_is_a_command_with_help() -> None:
    for op in OPERATIONS:
        if op.command is None:
            continue
        result = invoke(op.command, "--help")
        assert result.exit_code == 0, op.command
        assert op.summary.split("(")[0].strip() in " ".join(result.stdout.split())
        for declared in op.parameters():
            assert " ".join(declared.param.help.split()[:3]) in " ".join(result.stdout.split())
        assert "--json" in result.stdout
