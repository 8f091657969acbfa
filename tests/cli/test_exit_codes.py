"""Usage errors exit 2 for every command, with and without --json; never called a store failure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from tracked.cli import cli

# (command, argv): `M` is the registry's model, `E` its experiment. At least one per command.
USAGE_ERRORS = [
    ("models", ["models", "--metric"]),
    ("versions", ["versions"]),
    ("show", ["show", "M:2"]),
    ("show", ["show", "M", "--version", "two"]),
    ("compare", ["compare", "M", "-m", "val_acu"]),
    ("compare", ["compare", "M", "--versions", "x"]),
    ("compare", ["compare", "M", "--versions", "7"]),
    ("best", ["best", "M", "-m", "val_acu"]),
    ("diff", ["diff", "M:1", "M/2"]),
    ("diff", ["diff", "M/1"]),
    ("runs", ["runs", "--limit", "0"]),
    ("runs", ["runs", "-e", "E", "--filter", "metrics.val_auc >>> 1"]),
    ("promote", ["promote", "M", "one"]),
    ("promote", ["promote", "M", "1", "--stage", "prd"]),
    ("promote", ["promote", "M", "1", "--policy", "no_colon"]),
    ("rollback", ["rollback"]),
    ("register", ["register"]),
    ("log", ["log", "x", "-m", "auc=high"]),
    ("gc", ["gc", "M", "--keep", "-1"]),
    ("doctor", ["doctor", "--bogus"]),
    ("sync", ["sync", "--bogus"]),
    ("ui", ["ui", "--port", "x"]),
    ("mcp", ["mcp", "--bogus"]),
    (None, ["no-such-command"]),
    (None, ["--tracking-uri", "htp://127.0.0.1:5000", "models"]),
]


def test_the_table_covers_every_command() -> None:
    assert {command for command, _ in USAGE_ERRORS if command} == set(cli.commands)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize(
    ("command", "argv"), USAGE_ERRORS, ids=[" ".join(a) for _, a in USAGE_ERRORS]
)
def test_usage_errors_exit_2(registry: Any, command: str | None, argv: list[str], as_json: bool):
    args = [{"M": registry.model, "E": registry.experiment}.get(a, a) for a in argv]
    args = [a.replace("M:", f"{registry.model}:").replace("M/", f"{registry.model}/") for a in args]
    if not args[0].startswith("--"):
        args = ["--tracking-uri", registry.uri, *args]
    if as_json:
        args.insert(0, "--json")  # before the command: after it, `--metric --json` takes it

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for text in (result.stdout, result.stderr):
        assert "keep_last" not in text  # names what the user typed, not an internal
        assert "tracking store" not in text and "failed" not in text  # not a store failure
    if as_json:
        error = json.loads(result.stdout)  # one document, nothing else on stdout
        assert set(error) == {"error", "type", "exit_code"} and error["exit_code"] == 2
        assert error["error"].startswith("tracked: ")
    else:
        assert result.stdout == ""
        assert result.stderr.strip()
