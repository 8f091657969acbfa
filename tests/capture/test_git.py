"""Git state from real temporary repositories made with the git CLI."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tracked.capture.git import GitState, capture_git

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
    reason="needs the git CLI",
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user/system git config, and no repository discovered above the test's directory."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


def make_repo(path: Path, *, commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "init", "-q", str(path)],
        check=True,
        capture_output=True,
    )
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    if commit:
        (path / "train.py").write_text("lr = 0.1\n")
        git(path, "add", "train.py")
        git(path, "commit", "-q", "-m", "first")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_clean_repo(repo: Path) -> None:
    state = capture_git(repo)

    assert state is not None
    assert re.fullmatch(r"[0-9a-f]{40}", state.commit)
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert state.dirty is False
    assert state.diff is None
    assert state.untracked == ()
    assert state.repo_url is None
    assert Path(state.root).resolve() == repo.resolve()


def test_a_file_path_and_a_subdirectory_find_the_repository(repo: Path) -> None:
    (repo / "pkg").mkdir()

    by_file = capture_git(repo / "train.py")
    by_subdir = capture_git(repo / "pkg")

    assert by_file is not None and by_subdir is not None
    assert by_file.commit == by_subdir.commit == git(repo, "rev-parse", "HEAD")


def test_modified_tracked_file_is_dirty_with_diff(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.5  # changed\n")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is True
    assert state.diff is not None
    assert "+lr = 0.5  # changed" in state.diff
    assert "-lr = 0.1" in state.diff


def test_each_capture_sees_the_diff_of_its_moment_redacted(repo: Path) -> None:
    """The redacted diff is reused only for the very same diff: an edit between two runs of one
    process shows, and a credential added by it is redacted."""
    (repo / "train.py").write_text("lr = 0.5\n")
    first = capture_git(repo)
    again = capture_git(repo)
    (repo / "train.py").write_text('lr = 0.5\ntoken = "ghp_' + "a1B2" * 9 + '"\n')
    edited = capture_git(repo)

    assert first is not None and again is not None and edited is not None
    assert first.diff == again.diff and "+lr = 0.5" in (first.diff or "")
    assert edited.diff is not None and "+token = " in edited.diff
    assert "a1B2a1B2" not in edited.diff  # redacted in the new diff too


def test_a_secret_pattern_added_between_two_runs_redacts_the_same_diff(repo: Path) -> None:
    from tracked.capture.secrets import add_secret_pattern, reset_secret_patterns

    (repo / "train.py").write_text("lr = 0.5\ncode = 'ACME-7731-SECRET'\n")
    before = capture_git(repo)
    add_secret_pattern(r"ACME-\d{4}-SECRET")
    try:
        after = capture_git(repo)
    finally:
        reset_secret_patterns()

    assert before is not None and "ACME-7731-SECRET" in (before.diff or "")
    assert after is not None and "ACME-7731-SECRET" not in (after.diff or "")


def test_staged_change_is_dirty_too(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.7\n")
    git(repo, "add", "train.py")

    state = capture_git(repo)

    assert state is not None and state.dirty is True
    assert state.diff is not None and "+lr = 0.7" in state.diff


def test_untracked_only_is_not_dirty(repo: Path) -> None:
    (repo / "scratch.txt").write_text("notes\n")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is False
    assert state.diff is None
    assert state.untracked == ("scratch.txt",)


def test_untracked_files_are_listed_in_the_diff_when_dirty(repo: Path) -> None:
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "new_dir").mkdir()
    (repo / "new_dir" / "extra.py").write_text("x = 1\n")

    state = capture_git(repo)

    assert state is not None and state.dirty is True
    assert state.diff is not None
    assert "+lr = 0.2" in state.diff
    assert "untracked files" in state.diff
    assert "new_dir/extra.py" in state.diff
    assert "x = 1" not in state.diff  # listed, not diffed


def test_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")

    state = capture_git(repo)

    assert state is not None
    assert state.branch is None
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert "mlflow.source.git.branch" not in state.tags()


def test_other_branch_name(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x")

    state = capture_git(repo)

    assert state is not None and state.branch == "feature/x"


def test_remote_credentials_are_stripped(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:s3cr3t@github.com/o/r.git")

    state = capture_git(repo)

    assert state is not None
    assert state.repo_url == "https://github.com/o/r.git"
    assert "s3cr3t" not in repr(state)
    assert "s3cr3t" not in "".join(state.tags().values())


def test_ssh_remote_is_kept(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@github.com:o/r.git")

    state = capture_git(repo)

    assert state is not None and state.repo_url == "git@github.com:o/r.git"


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    assert capture_git(plain) is None


def test_missing_directory_gives_no_state(tmp_path: Path) -> None:
    assert capture_git(tmp_path / "does-not-exist") is None


def test_no_git_binary(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    assert capture_git(repo) is None


def test_repository_without_commits(tmp_path: Path) -> None:
    fresh = make_repo(tmp_path / "fresh", commit=False)
    (fresh / "a.txt").write_text("a\n")

    assert capture_git(fresh) is None


def test_default_path_is_the_working_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)

    state = capture_git()

    assert state is not None and state.commit == git(repo, "rev-parse", "HEAD")


def test_tags() -> None:
    state = GitState(
        commit="a" * 40,
        branch="main",
        repo_url="https://github.com/o/r.git",
        dirty=True,
        root="/r",
    )

    assert state.tags() == {
        "mlflow.source.git.commit": "a" * 40,
        "mlflow.source.git.branch": "main",
        "mlflow.source.git.repoURL": "https://github.com/o/r.git",
        "tracked.git.dirty": "true",
    }
    bare = GitState(commit="b" * 40, branch=None, repo_url=None, dirty=False, root="/r")
    assert bare.tags() == {"mlflow.source.git.commit": "b" * 40, "tracked.git.dirty": "false"}


# -- end to end ------------------------------------------------------------------------------

MODULE = """\
import tracked


@tracked.tracked_training(fingerprint=False)
def train(lr=0.1):
    return {"loss": lr}
"""


def load_module(path: Path) -> object:
    name = f"git_e2e_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_decorated_function_in_a_repository_records_its_git_state(
    store, tmp_path: Path, dirty: bool
) -> None:
    repo = make_repo(tmp_path / "project")
    git(repo, "remote", "add", "origin", "https://user:s3cr3t@github.com/o/project.git")
    module_path = repo / "training.py"
    module_path.write_text(MODULE)
    git(repo, "add", "training.py")
    git(repo, "commit", "-q", "-m", "training")
    if dirty:
        (repo / "train.py").write_text("lr = 0.9  # uncommitted\n")
    module = load_module(module_path)
    try:
        assert module.train(lr=0.3) == {"loss": 0.3}
    finally:
        sys.modules.pop(module.__name__, None)

    (run,) = store.runs()
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == "https://github.com/o/project.git"
    assert tags["tracked.git.dirty"] == str(dirty).lower()
    assert not any("s3cr3t" in value for value in tags.values())
    artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id, "tracked")}
    if dirty:
        local = store.client.download_artifacts(
            run.info.run_id, "tracked/git.diff", str(tmp_path / "dl")
        )
        diff = Path(local).read_text()
        assert "+lr = 0.9  # uncommitted" in diff
    else:
        assert "tracked/git.diff" not in artifacts
