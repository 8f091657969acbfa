"""Git state of the code that ran: commit, branch, remote (credentials stripped), dirty flag, diff.

Two `git` calls on a clean tree (status + remote), a third for the diff when dirty. Outside a
repository, or with no git binary, the answer is "no git state" and never an error.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from tracked.capture.secrets import redact_value, strip_url_credentials, value_rules

__all__ = ["GitState", "capture_git"]

_TIMEOUT = 10.0
MAX_DIFF_BYTES = 5 * 1024 * 1024
_REDACT_SLACK = 4096


@dataclass(frozen=True)
class GitState:
    commit: str
    branch: str | None
    repo_url: str | None
    dirty: bool
    root: str
    diff: str | None = None  # `git diff HEAD` plus the list of untracked files, when dirty
    untracked: tuple[str, ...] = field(default_factory=tuple)

    def tags(self) -> dict[str, str]:
        """MLflow's standard git tags plus tracked's dirty flag."""
        tags = {
            "mlflow.source.git.commit": self.commit,
            "tracked.git.dirty": str(self.dirty).lower(),
        }
        if self.branch:
            tags["mlflow.source.git.branch"] = self.branch
        if self.repo_url:
            tags["mlflow.source.git.repoURL"] = self.repo_url
        return tags


def capture_git(
    path: str | os.PathLike[str] | None = None, *, fallback: str | None = None
) -> GitState | None:
    """The git state of the repository containing `path` (default: the working directory).

    A `path` that is not on disk (code from a notebook cell, `python -c`, `exec`) uses `fallback`
    (the caller's working directory) instead.
    """
    cwd = os.fspath(path) if path is not None else (fallback or os.getcwd())
    if not os.path.exists(cwd):
        cwd = fallback or os.getcwd()
    if os.path.isfile(cwd):
        cwd = os.path.dirname(cwd) or "."
    if _git_program() is None:
        return None
    status = _git(cwd, "status", "--porcelain=v2", "--branch", "--untracked-files=all")
    if status is None:
        return None
    commit, branch, changed, untracked = None, None, False, []
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2]
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line.startswith("? "):
            untracked.append(line[2:])
        elif line and not line.startswith("#"):
            changed = True
    if commit is None or commit == "(initial)":
        return None  # a repository with no commit yet has no state to point at
    root = _root(cwd)
    remote = _remote(root)
    repo_url = strip_url_credentials(remote.strip()) if remote and remote.strip() else None
    diff = None
    if changed:
        diff = _redacted_diff(_git(cwd, "diff", "HEAD", "--no-color", "--no-ext-diff") or "")
        if untracked:
            diff += "\n# untracked files (not in the diff):\n" + "".join(
                f"#   {name}\n" for name in untracked
            )
    return GitState(
        commit=commit,
        branch=branch,
        repo_url=repo_url,
        dirty=changed,
        root=root,
        diff=diff,
        untracked=tuple(untracked),
    )


def _redacted_diff(diff: str) -> str:
    """The diff with credentials redacted, cut at MAX_DIFF_BYTES.

    An uncommitted change may hold a credential. Redacted a little past the cut, so that a token
    across it still has its shape, and no further: a huge diff costs no more. Redacting is
    Python work (8 ms for a 25 KB diff) on a thread beside the training, and runs of one process
    mostly see the same diff: the last answer is kept for the same diff under the same rules (a
    pattern added with `add_secret_pattern` since makes it redact again)."""
    global _last_diff
    rules = value_rules()
    last = _last_diff
    if last is not None and last[0] == diff and last[1] is rules:
        return last[2]
    cut = len(diff) > MAX_DIFF_BYTES
    redacted = redact_value(diff[: MAX_DIFF_BYTES + _REDACT_SLACK])
    if cut:
        redacted = redacted[:MAX_DIFF_BYTES] + f"\n... diff truncated at {MAX_DIFF_BYTES} bytes\n"
    _last_diff = (diff, rules, redacted)
    return redacted


_last_diff: tuple[str, object, str] | None = None  # (diff, rules, redacted): one per process


@functools.lru_cache(maxsize=1)
def _git_program() -> str | None:
    return shutil.which("git")


@functools.lru_cache(maxsize=256)
def _root(cwd: str) -> str:
    """The repository's top directory: asked once per directory per process (each question is a
    `git` process, and the run's end waits for the answers)."""
    return (_git(cwd, "rev-parse", "--show-toplevel") or cwd).strip()


def _remote(root: str) -> str | None:
    """`remote.origin.url`, asked again only when the repository's config file changed."""
    config = os.path.join(root, ".git", "config")
    try:
        stamp = os.stat(config).st_mtime_ns
    except OSError:  # a worktree or submodule (.git is a file): not cached
        return _git(root, "config", "--get", "remote.origin.url")
    return _remote_at(root, stamp)


@functools.lru_cache(maxsize=256)
def _remote_at(root: str, stamp: int) -> str | None:
    return _git(root, "config", "--get", "remote.origin.url")


def _git(cwd: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_TIMEOUT,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
