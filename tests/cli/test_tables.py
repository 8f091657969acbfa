"""Tables at real terminal widths (a pseudo-terminal of 60, 80, 100 and 160 columns) and piped.

Whatever the width: every run id printed is whole and `tracked show` accepts it, every metric
column is shown or named as not shown, no header is split, no line is wider than the terminal.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from terminal import in_terminal

from tracked.cli import cli

REPOSITORY = Path(__file__).resolve().parents[2]
WIDTHS = [60, 80, 100, 160]
HEX = re.compile(r"\b[0-9a-f]{8,}\b")
DRIVER = """
import json, sys
from tracked.cli import cli
for argv in json.loads(sys.argv[1]):
    print("@@@ " + " ".join(argv), flush=True)
    cli.main(args=argv, prog_name="tracked", standalone_mode=False)
    sys.stdout.flush()
"""


def commands(registry: Any) -> list[list[str]]:
    model = registry.model
    return [
        ["runs", "-e", registry.experiment],
        ["versions", model],
        ["compare", model],
        ["compare", model, "-m", "rmse"],
        ["models"],
        ["show", f"{model}@champion"],
    ]


def outputs_in_terminal(width: int, argvs: list[list[str]], uri: str, cwd: Path) -> dict[str, str]:
    """Each command's output in a pseudo-terminal `width` columns wide."""
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(REPOSITORY)}
    env["TRACKED_TRACKING_URI"] = uri
    argv = [sys.executable, "-c", DRIVER, json.dumps(argvs)]
    text, code = in_terminal(argv, width, env=env, cwd=cwd, timeout=120)
    assert code == 0, text
    sections = text.split("@@@ ")[1:]
    return {section.split("\n", 1)[0]: section.split("\n", 1)[1] for section in sections}


@pytest.fixture(scope="module")
def terminal_outputs(registry: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Any]:
    cwd = tmp_path_factory.mktemp("terminal")
    argvs = commands(registry)
    return {w: outputs_in_terminal(w, argvs, registry.uri, cwd) for w in WIDTHS}


def header_cells(text: str) -> list[str] | None:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "┃" in line:
            assert set(lines[i + 1]) <= set("━╇ "), f"a header spans two lines:\n{text}"
            return [cell.strip() for cell in line.split("┃")]
    return None


def not_shown(text: str) -> str:
    """The note naming the columns a narrow terminal left out (wrapped lines joined)."""
    _, _, note = text.partition("not shown (terminal too narrow):")
    return " ".join(note.split())


def assert_ids_whole(text: str, run_ids: list[str]) -> set[str]:
    """Every hex token that starts a run id is the whole id; returns the ids printed."""
    printed = set()
    for token in HEX.findall(text):
        if any(run_id.startswith(token) for run_id in run_ids):
            assert token in run_ids, f"a cut run id {token!r} in:\n{text}"
            printed.add(token)
    return printed


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_fit_the_terminal(terminal_outputs: dict[int, Any], registry: Any, width: int):
    outputs = terminal_outputs[width]
    for command, text in outputs.items():
        for line in text.splitlines():
            assert len(line) <= width, f"{command} at {width}: {line!r}"

    runs = outputs[f"runs -e {registry.experiment}"]
    assert assert_ids_whole(runs, registry.run_ids) == set(registry.run_ids)
    cells = header_cells(runs)
    assert cells is not None and cells[0] == "run id"
    if "status" in cells:
        assert "FINISHED" in runs
    for command in (f"runs -e {registry.experiment}", f"versions {registry.model}"):
        text = outputs[command]
        shown, missing = header_cells(text) or [], not_shown(text)
        known = {"run id", "name", "status", "started", "commit", "model", "version"}
        known |= {"aliases", "git", "data", "created", "decision", *registry.metrics}
        assert set(shown) <= known, f"a split or unknown header at {width}: {shown}"
        for metric in registry.metrics:
            assert metric in shown or metric in missing, f"{metric} vanished at {width}:\n{text}"

    compare = outputs[f"compare {registry.model} -m rmse"]
    assert "rmse: lower is better" in " ".join(compare.split())
    best = next(line for line in compare.splitlines() if line.startswith("best"))
    assert "v2" in best  # the lowest rmse, not the highest
    assert "val_auc" in (header_cells(outputs[f"compare {registry.model}"]) or [])
    assert_ids_whole(outputs[f"show {registry.model}@champion"], registry.run_ids)


def test_every_run_id_printed_is_one_show_accepts(
    terminal_outputs: dict[int, Any], registry: Any
) -> None:
    printed = set()
    for outputs in terminal_outputs.values():
        for text in outputs.values():
            printed |= assert_ids_whole(text, registry.run_ids)
    assert printed == set(registry.run_ids)
    for run_id in printed:
        result = CliRunner().invoke(cli, ["--tracking-uri", registry.uri, "show", run_id, "--json"])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["run_id"] == run_id


def test_piped_output_is_tab_separated_and_whole(registry: Any) -> None:
    for argv in commands(registry)[:5]:
        result = CliRunner().invoke(cli, ["--tracking-uri", registry.uri, *argv])
        assert result.exit_code == 0, result.stderr
        header, *rows = result.stdout.rstrip("\n").split("\n")
        columns = header.split("\t")
        assert all(len(row.split("\t")) == len(columns) for row in rows), argv
        assert "┃" not in result.stdout and "…" not in result.stdout
        if argv[0] in ("runs", "versions"):
            assert set(registry.metrics) <= set(columns)
        assert_ids_whole(result.stdout, registry.run_ids)
    runs = CliRunner().invoke(cli, ["--tracking-uri", registry.uri, *commands(registry)[0]])
    assert {line.split("\t")[0] for line in runs.stdout.splitlines()[1:]} == set(registry.run_ids)
