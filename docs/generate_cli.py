"""Regenerate docs/cli.md from real output: `python docs/generate_cli.py` (about two minutes).

It makes a small project in a temporary folder (a git repository whose pyproject.toml names the
project `churn` and configures a champion policy), trains three versions of a scikit-learn model
with tracked, then runs every command in a terminal 100 columns wide (a pseudo-terminal, so the
tables are what a person sees), piped, and with --json, and writes what they printed into the
page. Nothing in the page's sessions is typed by hand.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
WIDTH = 100

from terminal import in_terminal  # noqa: E402  (tests/terminal.py: the pseudo-terminal)

PYPROJECT = """\
[project]
name = "churn"

[tool.tracked.policies]
champion = "policies:champion"
"""
POLICIES = """\
from tracked import PromotionPolicy, metric

champion = PromotionPolicy(
    to="champion",
    when=[metric("val_auc") >= 0.85, metric("val_auc").beats("champion", by=0.001)],
    require_clean_git=True,
)
"""
TRAIN = """\
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

import tracked


@tracked.tracked_training(name="train")
def train(X, y, *, C=1.0):
    model = LogisticRegression(C=C, max_iter=500).fit(X[:400], y[:400])
    p = model.predict_proba(X[400:])[:, 1]
    return model, {"val_auc": roc_auc_score(y[400:], p), "val_loss": log_loss(y[400:], p)}


rng = np.random.RandomState(0)
X = rng.rand(500, 6)
y = (X[:, 0] + 0.4 * rng.rand(500) > 0.7).astype(int)
train(X, y, C=float(sys.argv[1]))
"""


def run(
    argv: list[str], cwd: Path, env: dict[str, str], *, terminal: bool = True
) -> tuple[str, int]:
    """What `argv` printed (stdout, then stderr) and its exit code, in a terminal WIDTH wide or
    piped."""
    if not terminal:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        return done.stdout + done.stderr, done.returncode
    return in_terminal(argv, WIDTH, env=env, cwd=cwd)


class Session:
    """Runs `tracked ...` commands in the project and keeps each as `$ command` + output."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project, self.env = project, env

    def __call__(self, command: str, *, terminal: bool = True, show_exit: bool = False) -> str:
        argv = shlex.split(command)
        if argv[0] == "tracked":
            argv = [sys.executable, "-m", "tracked.cli", *argv[1:]]
        if "|" in argv:  # a pipe: through the shell, never a terminal
            shell = command.replace("tracked ", f"{sys.executable} -m tracked.cli ", 1)
            done = subprocess.run(
                shell, shell=True, cwd=self.project, env=self.env, capture_output=True, text=True
            )
            return f"$ {command}\n{done.stdout}"
        output, code = run(argv, self.project, self.env, terminal=terminal)
        if show_exit:
            output += f"[exit {code}]\n"
        return f"$ {command}\n{output}"


def block(*parts: str, lang: str = "") -> str:
    return f"```{lang}\n" + "\n".join(p.rstrip("\n") for p in parts) + "\n```\n"


def build(folder: Path) -> tuple[Path, dict[str, str]]:
    project = folder / "churn"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "policies.py").write_text(POLICIES)
    (project / "train.py").write_text(TRAIN)
    (project / ".gitignore").write_text("mlflow.db*\nmlartifacts/\n__pycache__/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKED_", "MLFLOW_"))}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", TRACKED_SPOOL_DIR=str(folder / "spool"))
    env.pop("COLUMNS", None)
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    subprocess.run([*git, "add", "."], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "churn model"], cwd=project, check=True)
    for c in ("0.01", "1", "0.1"):
        subprocess.run([sys.executable, "train.py", c], cwd=project, env=env, check=True)
    return project, env


def tools_table() -> str:
    from tracked.ops import OPERATIONS

    rows = ["| tool | arguments (`?` optional) | |", "| --- | --- | --- |"]
    for op in OPERATIONS:
        if op.tool is None:
            continue
        args = ", ".join(
            d.name + ("" if d.required else "?") for d in op.parameters() if d.param.tool
        )
        write = " (write)" if op.writes else ""
        rows.append(f"| `{op.tool}`{write} | {args} | {op.summary} |")
    return "\n".join(rows) + "\n"


def page(s: Session) -> str:
    template = (ROOT / "docs" / "cli.template.md").read_text()
    sessions = {
        "policy": block(POLICIES.rstrip(), lang="python").replace(
            "```python\n", "```python\n# policies.py\n"
        ),
        "pyproject": block(PYPROJECT.rstrip(), lang="toml"),
        "session": block(
            s("tracked versions churn-train"),
            s("tracked compare churn-train"),
            s("tracked compare churn-train -m val_loss"),
            s("tracked best churn-train"),
            s("tracked promote churn-train 1"),
            s("tracked promote churn-train 2"),
            s("tracked promote churn-train 3", show_exit=True),
            s("tracked show churn-train@champion"),
            s("tracked diff churn-train/1 3"),
            s("tracked models"),
            s("tracked runs"),
            s("tracked runs -e churn --filter 'metrics.val_auc > 0.9'"),
            s("tracked rollback churn-train"),
            s("tracked gc churn-train --keep 1"),
        ),
        "doctor": block(s("tracked doctor")),
        "errors": block(
            s("tracked versions churn-trian", show_exit=True),
            s("tracked show churn-train@champoin", show_exit=True),
            s("tracked show churn-train:2", show_exit=True),
            s("tracked compare churn-train -m val_acu", show_exit=True),
            s("tracked gc churn-train --keep -1", show_exit=True),
            s("tracked --tracking-uri htp://127.0.0.1:5000 models", show_exit=True),
            s("tracked --tracking-uri http://127.0.0.1:9 models", show_exit=True),
        ),
        "narrow": block(
            run_narrow(s, "tracked versions churn-train", 60),
            run_narrow(s, "tracked runs -e churn", 60),
        ),
        "piped": block(s("tracked runs -e churn | cut -f1,2,7,8")),
        "json": block(
            s("tracked compare churn-train --versions 1 3 --json", terminal=False),
            s("tracked compare churn-train -m val_acu --json", terminal=False),
        ),
        "ui": block(s("tracked ui --port 5055 --json", terminal=False)),
        "tools": tools_table(),
    }
    for name, text in sessions.items():
        template = template.replace("{{" + name + "}}", text.rstrip("\n"))
    return template


def run_narrow(s: Session, command: str, width: int) -> str:
    global WIDTH
    saved, WIDTH = WIDTH, width
    try:
        return s(command).replace("$ ", f"$ # {width} columns\n$ ", 1)
    finally:
        WIDTH = saved


def main() -> None:
    folder = Path(tempfile.gettempdir()) / "tracked-docs"
    shutil.rmtree(folder, ignore_errors=True)
    project, env = build(folder)
    text = page(Session(project, env))
    (ROOT / "docs" / "cli.md").write_text(text.replace(str(folder), "/tmp/tracked-docs"))
    print(f"wrote {ROOT / 'docs' / 'cli.md'}")


if __name__ == "__main__":
    main()
