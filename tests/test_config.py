"""Settings: precedence, origins, project/experiment defaults, strict parsing, configure()."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import tracked
from tracked.config import Settings, configure, get_config, reset_defaults, resolve
from tracked.errors import ConfigError


def write_pyproject(directory: Path, tool: str = "", project: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = f'[project]\nname = "{project}"\n\n' if project else ""
    text += f"[tool.tracked]\n{tool}\n" if tool else ""
    path = directory / "pyproject.toml"
    path.write_text(text)
    return path


@pytest.fixture
def nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """cwd is tmp/outer/inner; both directories may hold a pyproject.toml."""
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    return outer, inner


# -- tracking_uri precedence, highest first ----------------------------------------------------

LEVELS = ["argument", "configure", "env", "pyproject", "mlflow_env"]


def _set_up_levels(levels: list[str], inner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "configure" in levels:
        configure(tracking_uri="http://configure:5000")
    if "env" in levels:
        monkeypatch.setenv("TRACKED_TRACKING_URI", "http://tracked-env:5000")
    if "pyproject" in levels:
        write_pyproject(inner, tool='tracking_uri = "http://pyproject:5000"')
    if "mlflow_env" in levels:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-env:5000")


@pytest.mark.parametrize("top", range(len(LEVELS) + 1))
def test_tracking_uri_precedence(
    top: int, nested: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, inner = nested
    present = LEVELS[top:]
    _set_up_levels(present, inner, monkeypatch)
    arguments = {"tracking_uri": "http://argument:5000"} if "argument" in present else {}

    settings = resolve(**arguments)

    expected = {
        "argument": ("http://argument:5000", "argument"),
        "configure": ("http://configure:5000", "configure()"),
        "env": ("http://tracked-env:5000", "env TRACKED_TRACKING_URI"),
        "pyproject": (
            "http://pyproject:5000",
            f"pyproject {inner / 'pyproject.toml'} [tool.tracked]",
        ),
        "mlflow_env": ("http://mlflow-env:5000", "env MLFLOW_TRACKING_URI"),
    }
    if present:
        uri, origin = expected[present[0]]
    else:
        uri = f"sqlite:///{(inner / 'mlflow.db').resolve().as_posix()}"
        origin = "default (embedded SQLite in the working directory)"
    assert settings.tracking_uri == uri
    assert settings.origins["tracking_uri"] == origin
    assert settings.registry_uri == uri  # derived
    assert settings.origins["registry_uri"] == f"same as tracking_uri ({origin})"


def test_default_tracking_uri_is_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    settings = get_config()

    assert settings.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve().as_posix()}"
    assert settings.tracking_uri.startswith("sqlite:////")


def test_nearest_pyproject_wins(nested: tuple[Path, Path]) -> None:
    outer, inner = nested
    write_pyproject(outer, tool='experiment = "outer-exp"\ntracking_uri = "http://outer:1"')
    near = write_pyproject(inner, tool='experiment = "inner-exp"')

    settings = get_config()

    assert settings.experiment == "inner-exp"
    assert settings.origins["experiment"] == f"pyproject {near} [tool.tracked]"
    # The nearest file is the only one read: the outer table does not fill the gaps.
    assert settings.tracking_uri.startswith("sqlite:///")


def test_parent_pyproject_is_found_from_a_subdirectory(nested: tuple[Path, Path]) -> None:
    outer, _ = nested
    far = write_pyproject(outer, tool='experiment = "outer-exp"', project="outer-proj")

    settings = get_config()

    assert settings.experiment == "outer-exp"
    assert settings.origins["experiment"] == f"pyproject {far} [tool.tracked]"
    assert settings.project == "outer-proj"


def test_mlflow_experiment_name_and_registry_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-mlflow")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://registry:1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:1")

    settings = get_config()

    assert settings.experiment == "from-mlflow"
    assert settings.origins["experiment"] == "env MLFLOW_EXPERIMENT_NAME"
    assert settings.registry_uri == "http://registry:1"
    assert settings.origins["registry_uri"] == "env MLFLOW_REGISTRY_URI"


def test_every_field_has_an_origin() -> None:
    settings = get_config()

    assert set(settings.origins) == {
        "tracking_uri",
        "registry_uri",
        "experiment",
        "project",
        "naming",
        "strict",
        "spool_dir",
        "artifact_location",
    }
    assert settings.origins["naming"] == "default"
    assert settings.origins["spool_dir"] == "env TRACKED_SPOOL_DIR"  # set by conftest


# -- project and experiment defaults ----------------------------------------------------------


def test_project_from_pyproject_project_name(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    path = write_pyproject(inner, project="churn-model")

    settings = get_config()

    assert settings.project == "churn-model"
    assert settings.origins["project"] == f"pyproject {path}"
    assert settings.experiment == "churn-model"
    assert settings.origins["experiment"] == "same as project"


def test_tool_tracked_project_beats_project_name(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    write_pyproject(inner, tool='project = "explicit"', project="churn-model")

    assert get_config().project == "explicit"


def test_project_from_git_repository_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "my-repo"
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True)
    monkeypatch.chdir(sub)

    settings = get_config()

    assert settings.project == "my-repo"
    assert settings.origins["project"] == "git repository name"
    assert settings.experiment == "my-repo"


def test_project_from_working_directory_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "plain-dir"
    work.mkdir()
    monkeypatch.chdir(work)

    settings = get_config()

    assert settings.project == "plain-dir"
    assert settings.origins["project"] == "working directory name"
    assert settings.experiment == "plain-dir"


def test_explicit_experiment_is_not_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_PROJECT", "proj")
    monkeypatch.setenv("TRACKED_EXPERIMENT", "exp")

    settings = get_config()

    assert (settings.project, settings.experiment) == ("proj", "exp")


def test_resolve_with_a_cwd_argument(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    write_pyproject(elsewhere, project="there")

    settings = resolve(cwd=elsewhere)

    assert settings.project == "there"
    assert settings.tracking_uri == f"sqlite:///{(elsewhere / 'mlflow.db').resolve().as_posix()}"


# -- strict parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False)],
)
def test_strict_from_env(text: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_STRICT", text)

    settings = get_config()

    assert settings.strict is expected
    assert settings.origins["strict"] == "env TRACKED_STRICT"


def test_empty_strict_env_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_STRICT", "")

    settings = get_config()

    assert settings.strict is False
    assert settings.origins["strict"] == "default"


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("yes", True), ("", False)])
def test_strict_from_configure(text: str, expected: bool) -> None:
    configure(strict=text)

    assert get_config().strict is expected


def test_strict_from_pyproject_boolean(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    write_pyproject(inner, tool="strict = true")

    assert get_config().strict is True


def test_malformed_strict_env_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_STRICT", "maybe")

    with pytest.raises(ConfigError, match="TRACKED_STRICT") as info:
        get_config()
    assert info.value.value == "maybe"


def test_malformed_strict_configure_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="maybe"):
        configure(strict="maybe")


def test_non_string_uri_in_pyproject_raises_config_error(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    write_pyproject(inner, tool="tracking_uri = 5")

    with pytest.raises(ConfigError, match="tracking_uri"):
        get_config()


def test_broken_pyproject_raises_config_error(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    (inner / "pyproject.toml").write_text("[tool.tracked\n")

    with pytest.raises(ConfigError, match="TOML"):
        get_config()


# -- configure / reset_defaults -----------------------------------------------------------------


def test_configure_unknown_setting_raises() -> None:
    with pytest.raises(ConfigError, match="unknown_thing") as info:
        configure(unknown_thing=1)
    assert info.value.field == "unknown_thing"


def test_configure_none_removes_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_EXPERIMENT", "from-env")
    configure(experiment="configured")
    assert get_config().experiment == "configured"

    configure(experiment=None)

    settings = get_config()
    assert settings.experiment == "from-env"
    assert settings.origins["experiment"] == "env TRACKED_EXPERIMENT"


def test_reset_defaults_forgets_everything() -> None:
    configure(experiment="x", project="y", strict=True)

    reset_defaults()

    settings = get_config()
    assert settings.strict is False
    assert settings.origins["experiment"] == "same as project"
    assert settings.origins["project"] != "configure()"


def test_get_config_returns_a_fresh_immutable_object(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_config()
    monkeypatch.setenv("TRACKED_EXPERIMENT", "changed")

    second = get_config()

    assert first.experiment != "changed" and second.experiment == "changed"
    with pytest.raises(AttributeError):
        first.experiment = "mutated"  # type: ignore[misc]


def test_public_names_are_the_config_functions() -> None:
    assert tracked.configure is configure
    assert tracked.get_config is get_config
    assert tracked.reset_defaults is reset_defaults
    assert tracked.Settings is Settings


# -- Settings.replace ---------------------------------------------------------------------------


def test_replace_keeps_a_derived_registry_uri_following_tracking_uri() -> None:
    base = get_config()

    moved = base.replace(tracking_uri="http://new:5000", experiment=None)

    assert moved.tracking_uri == moved.registry_uri == "http://new:5000"
    assert moved.origins["tracking_uri"] == "argument"
    assert moved.origins["registry_uri"] == "same as tracking_uri (argument)"
    assert moved.experiment == base.experiment
    assert base.tracking_uri != "http://new:5000"  # the original is unchanged


def test_replace_leaves_an_explicit_registry_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_REGISTRY_URI", "http://registry:1")

    moved = get_config().replace(tracking_uri="http://new:5000")

    assert moved.registry_uri == "http://registry:1"
    assert moved.origins["registry_uri"] == "env TRACKED_REGISTRY_URI"


def test_replace_with_nothing_returns_the_same_object() -> None:
    base = get_config()

    assert base.replace(tracking_uri=None, strict=None) is base
