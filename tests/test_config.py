"""Settings: precedence, origins, project/experiment defaults, strict parsing, configure()."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
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

LEVELS = ["argument", "configure", "env", "mlflow_in_process", "mlflow_env", "pyproject"]


@pytest.fixture
def mlflow_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's in-process settings and the variables its setters export, restored afterwards."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)


def _set_up_levels(levels: list[str], inner: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    if "configure" in levels:
        configure(tracking_uri="http://configure:5000")
    if "env" in levels:
        monkeypatch.setenv("TRACKED_TRACKING_URI", "http://tracked-env:5000")
    if "mlflow_env" in levels:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow-env:5000")
    if "mlflow_in_process" in levels:
        mlflow.set_tracking_uri("http://in-process:5000")  # exports MLFLOW_TRACKING_URI too
    if "pyproject" in levels:
        write_pyproject(inner, tool='tracking_uri = "http://pyproject:5000"')


@pytest.mark.parametrize("top", range(len(LEVELS) + 1))
@pytest.mark.usefixtures("mlflow_globals")
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
        "mlflow_in_process": ("http://in-process:5000", "MLflow in-process (mlflow.set_*)"),
        "mlflow_env": ("http://mlflow-env:5000", "env MLFLOW_TRACKING_URI"),
        "pyproject": (
            "http://pyproject:5000",
            f"pyproject {inner / 'pyproject.toml'} [tool.tracked]",
        ),
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


def test_an_exported_mlflow_uri_beats_a_committed_pyproject(
    nested: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job redirecting MLflow through its environment is not overridden by the repo."""
    _, inner = nested
    write_pyproject(inner, tool='tracking_uri = "http://committed:5000"')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ci:5000")

    assert get_config().tracking_uri == "http://ci:5000"


@pytest.mark.usefixtures("mlflow_globals")
def test_mlflow_set_experiment_names_the_experiment_by_id(tmp_path: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}")
    experiment_id = mlflow.set_experiment("from-mlflow").experiment_id

    settings = get_config()

    assert settings.experiment_id == experiment_id
    assert settings.origins["experiment_id"] == "MLflow in-process (mlflow.set_*)"
    assert settings.origins["experiment"].endswith("(unused: experiment_id names the experiment)")


@pytest.mark.usefixtures("mlflow_globals")
def test_an_experiment_name_above_beats_an_id_below(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "17")
    assert get_config().experiment_id == "17"
    assert get_config().origins["experiment_id"] == "env MLFLOW_EXPERIMENT_ID"

    monkeypatch.setenv("TRACKED_EXPERIMENT", "named")
    settings = get_config()
    assert (settings.experiment, settings.experiment_id) == ("named", None)

    moved = resolve().replace(experiment="argument-name")
    assert moved.experiment == "argument-name" and moved.experiment_id is None


def test_an_mlflow_name_and_id_at_one_level_the_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "17")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "by-name")

    settings = get_config()

    assert (settings.experiment, settings.experiment_id) == ("by-name", None)


def test_reading_settings_does_not_import_mlflow() -> None:
    code = "import sys, tracked; tracked.get_config(); assert 'mlflow' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


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
        f.name for f in dataclasses.fields(Settings) if f.name not in ("origins", "problems")
    }
    assert settings.origins["naming"] == "default"
    assert settings.origins["champion_alias"] == "default"
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


# -- mistakes are reported, with a suggestion ---------------------------------------------------


def test_a_misspelt_pyproject_key_is_warned_about_with_a_suggestion(
    nested: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    _, inner = nested
    write_pyproject(inner, tool='trackng_uri = "http://typo:5000"')

    with caplog.at_level(logging.WARNING, logger="tracked"):
        settings = get_config()

    assert settings.tracking_uri.startswith("sqlite:///")  # the typo did not take effect ...
    (problem,) = settings.problems  # ... and it is not silent
    assert "trackng_uri" in problem and "did you mean 'tracking_uri'?" in problem
    assert any("did you mean 'tracking_uri'?" in r.getMessage() for r in caplog.records)


def test_a_misspelt_variable_is_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TRACKED_TRACKNG_URI", "http://typo:5000")

    with caplog.at_level(logging.WARNING, logger="tracked"):
        get_config()
        get_config()

    (problem,) = get_config().problems
    assert "TRACKED_TRACKNG_URI" in problem and "did you mean 'TRACKED_TRACKING_URI'?" in problem
    warned = [r for r in caplog.records if "TRACKED_TRACKNG_URI" in r.getMessage()]
    assert len(warned) <= 1  # once per process (an earlier test may have warned already)


def test_under_strict_a_misspelt_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_STRICT", "1")
    monkeypatch.setenv("TRACKED_EXPERIMNT", "x")

    with pytest.raises(ConfigError, match="did you mean 'TRACKED_EXPERIMENT'"):
        get_config()


def test_a_secret_in_a_misspelt_variable_is_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_API_TOKEN", "s3cr3t-value-123")

    (problem,) = get_config().problems

    assert "s3cr3t-value-123" not in problem


@pytest.mark.parametrize(
    ("uri", "suggestion"),
    [("htp://localhost:5000", "http"), ("sqllite:///x.db", "sqlite"), ("postgress://h/db", None)],
)
def test_an_unknown_uri_scheme_is_a_configuration_problem(
    uri: str, suggestion: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKED_TRACKING_URI", uri)

    (problem,) = get_config().problems

    assert "unknown scheme" in problem
    if suggestion:
        assert f"did you mean {suggestion!r}?" in problem
    monkeypatch.setenv("TRACKED_STRICT", "true")
    with pytest.raises(ConfigError, match="scheme"):
        get_config()


@pytest.mark.parametrize(
    "uri",
    [
        "http://h:5000",
        "https://h",
        "sqlite:///x.db",
        "postgresql+psycopg2://u@h/db",
        "mysql://h/db",
        "file:///tmp/mlruns",
        "/tmp/mlruns",
        "databricks",
    ],
)
def test_known_stores_are_no_problem(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_TRACKING_URI", uri)

    assert get_config().problems == ()


# -- the new settings -----------------------------------------------------------------------------


def test_policies_from_the_pyproject_table(nested: tuple[Path, Path]) -> None:
    _, inner = nested
    path = write_pyproject(
        inner,
        tool='champion_alias = "Prod"\nkey_metric = "val_auc"\n\n[tool.tracked.policies]\n'
        'prod = "rules:prod"\nChallenger = "rules:challenger"\n',
    )

    settings = get_config()

    assert dict(settings.policies) == {"prod": "rules:prod", "challenger": "rules:challenger"}
    assert settings.origins["policies"] == f"pyproject {path} [tool.tracked]"
    assert settings.champion_alias == "prod"  # aliases are lower case
    assert settings.key_metric == "val_auc" and settings.problems == ()


def test_policies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_POLICIES", "champion=rules:champion, staging=rules:staging")

    assert dict(get_config().policies) == {
        "champion": "rules:champion",
        "staging": "rules:staging",
    }


@pytest.mark.parametrize("value", ["champion", "champion=rules", "champion=no module:x"])
def test_a_malformed_policies_value_is_a_config_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKED_POLICIES", value)

    with pytest.raises(ConfigError, match="TRACKED_POLICIES"):
        get_config()


def test_quiet_and_champion_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKED_QUIET", "yes")
    configure(champion_alias="production")

    settings = get_config()

    assert settings.quiet is True and settings.champion_alias == "production"
    with pytest.raises(ConfigError, match="champion_alias"):
        configure(champion_alias="not an alias")


def test_configure_suggests_the_setting_meant() -> None:
    with pytest.raises(ConfigError, match="did you mean 'tracking_uri'"):
        configure(trackin_uri="http://x")


def test_paths_are_accepted_where_a_folder_is_asked_for(tmp_path: Path) -> None:
    settings = get_config().replace(spool_dir=tmp_path / "spool", artifact_location=tmp_path)

    assert settings.spool_dir == str(tmp_path / "spool")
    assert settings.artifact_location == str(tmp_path)
