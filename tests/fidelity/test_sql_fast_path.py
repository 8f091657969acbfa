"""The sender's fast path on a SQL store writes what MLflow's client writes.

tracked/writers/sql.py writes runs, params, tags, metric points and statuses with SQLAlchemy
Core through MLflow's own tables. Each test writes the same run both ways into one real store
(SQLite in a temp dir, and a fresh PostgreSQL database) and compares what MLflow reads back; and
what the fast path declines is left untouched for MLflow's client to answer.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tracked.writers.sql import NOT_HANDLED, SqlFastPath, fast_path

MAX_METRICS = 1000  # MLflow's log_batch limit


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sql(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if request.param == "sqlite":
        uri = f"sqlite:///{(tmp_path_factory.mktemp('fast') / 'mlflow.db').as_posix()}"
    else:
        uri = request.getfixturevalue("postgres_url")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    fast = fast_path(client._tracking_client.store)
    assert isinstance(fast, SqlFastPath)
    experiment_id = client.create_experiment(f"fast-{uuid.uuid4().hex[:8]}")
    yield client, fast, experiment_id
    client._tracking_client.store.engine.dispose()


def _valid(name: str) -> bool:
    """A name MLflow's client takes (the fast path declines the others: tested below)."""
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    return bool(validate_param_and_metric_name(name)) and not path_not_unique(name)


names = st.text(alphabet=st.sampled_from("abcXYZ019_-./ "), min_size=1, max_size=12).filter(_valid)
values = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
points = st.lists(
    st.tuples(
        st.sampled_from(["loss", "acc", "val/auc"]),
        st.one_of(
            st.sampled_from([0.0, -0.0, 1.0, 2.5, math.nan, math.inf, -math.inf]),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        st.integers(0, 2),  # few steps and times: ties and duplicates are common
        st.integers(1_700_000_000_000, 1_700_000_000_001),
    ),
    max_size=40,
)


def _rows(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The run's rows in MLflow's tables, as stored (what the API does not show too)."""
    from sqlalchemy import text

    engine = client._tracking_client.store.engine
    tables = {
        "runs": "SELECT * FROM runs WHERE run_uuid = :r",
        "latest_metrics": "SELECT * FROM latest_metrics WHERE run_uuid = :r ORDER BY key",
        "metrics": "SELECT * FROM metrics WHERE run_uuid = :r",
    }
    found: dict[str, Any] = {}
    with engine.connect() as connection:
        for table, query in tables.items():
            rows = connection.execute(text(query), {"r": run_id}).mappings().all()
            found[table] = sorted(
                repr(
                    {
                        k: (v.replace(run_id, "<id>") if isinstance(v, str) else v)
                        for k, v in row.items()
                    }
                )
                for row in rows
            )
    return found


def _read(client: MlflowClient, run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    info = run.info
    histories = {
        key: sorted(
            (m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, key)
        )
        for key in run.data.metrics
    }
    return {
        "info": (
            info.run_name,
            info.status,
            info.start_time,
            info.end_time,
            info.user_id,
            info.lifecycle_stage,
            info.experiment_id,
            info.artifact_uri.replace(run_id, "<id>"),
        ),
        "params": run.data.params,
        "tags": run.data.tags,
        "latest": {k: repr(v) for k, v in run.data.metrics.items()},
        "histories": histories,
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(names, values, max_size=8),
    tags=st.dictionaries(names.map(lambda k: "t." + k), values, max_size=8),
    later_tags=st.dictionaries(names.map(lambda k: "t." + k), values, max_size=4),
    later_params=st.dictionaries(names.map(lambda k: "p." + k), values, max_size=4),
    first=points,
    second=points,
    status=st.sampled_from(["FINISHED", "FAILED", "KILLED"]),
)
def test_a_run_written_by_the_fast_path_reads_back_as_mlflows_own(
    sql: Any,
    params: dict[str, str],
    tags: dict[str, str],
    later_tags: dict[str, str],
    later_params: dict[str, str],
    first: list[tuple[str, float, int, int]],
    second: list[tuple[str, float, int, int]],
    status: str,
) -> None:
    client, fast, experiment_id = sql
    start, end = 1_700_000_000_000, 1_700_000_009_000
    tags = {**tags, "mlflow.user": "someone"}

    made = fast.create_run(
        experiment_id, name="run", start_time=start, tags=tags, params=params, user="someone"
    )
    assert made is not NOT_HANDLED
    ours = made[0]
    for batch, extra_tags, extra_params in ((first, later_tags, later_params), (second, {}, {})):
        columns = tuple(list(c) for c in zip(*batch, strict=True)) if batch else ([],) * 4
        keys, vals, steps, stamps = columns
        done = fast.log(
            ours, params=extra_params, tags=extra_tags, points=(keys, vals, steps, stamps)
        )
        assert done is True
    assert fast.end(ours, status, end) is True

    theirs = client.create_run(experiment_id, start_time=start, tags=tags, run_name="run")
    theirs_id = theirs.info.run_id
    if params:
        client.log_batch(theirs_id, params=[Param(k, v) for k, v in params.items()])
    for batch, extra_tags, extra_params in ((first, later_tags, later_params), (second, {}, {})):
        metrics = [Metric(k, v, t, s) for k, v, s, t in batch]
        client.log_batch(
            theirs_id,
            params=[Param(k, v) for k, v in extra_params.items()],
            tags=[RunTag(k, v) for k, v in extra_tags.items()],
        )
        for start_at in range(0, len(metrics), MAX_METRICS):
            client.log_batch(theirs_id, metrics=metrics[start_at : start_at + MAX_METRICS])
    client.set_terminated(theirs_id, status=status, end_time=end)

    assert _read(client, ours) == _read(client, theirs_id)
    assert _rows(client, ours) == _rows(client, theirs_id)


def test_a_changed_param_is_declined_and_nothing_of_the_batch_is_written(sql: Any) -> None:
    client, fast, experiment_id = sql
    run_id, _ = fast.create_run(
        experiment_id, name="r", start_time=1, tags={}, params={"depth": "3"}, user="u"
    )

    answer = fast.log(
        run_id,
        params={"depth": "4", "lr": "0.1"},
        tags={"stage": "dev"},
        points=(["loss"], [0.5], [0], [1]),
    )

    assert answer is NOT_HANDLED  # MLflow's client refuses it and names the param
    run = client.get_run(run_id)
    assert run.data.params == {"depth": "3"}
    assert "stage" not in run.data.tags and run.data.metrics == {}


def test_a_deleted_run_or_experiment_is_left_to_mlflow(sql: Any) -> None:
    client, fast, experiment_id = sql
    run_id, _ = fast.create_run(experiment_id, name="r", start_time=1, tags={}, params={}, user="u")
    client.delete_run(run_id)
    gone = client.create_experiment(f"gone-{uuid.uuid4().hex[:8]}")
    client.delete_experiment(gone)

    assert fast.log(run_id, tags={"a": "b"}) is NOT_HANDLED
    assert fast.end(run_id, "FINISHED", 2) is NOT_HANDLED
    assert fast.log(uuid.uuid4().hex, tags={"a": "b"}) is NOT_HANDLED  # no such run
    made = fast.create_run(gone, name="r", start_time=1, tags={}, params={}, user="u")
    assert made is NOT_HANDLED
    assert client.get_run(run_id).info.status == "RUNNING"


def test_what_mlflow_would_refuse_or_treat_specially_is_declined(sql: Any) -> None:
    client, fast, experiment_id = sql
    run_id, _ = fast.create_run(experiment_id, name="r", start_time=1, tags={}, params={}, user="u")

    assert fast.log(run_id, params={"bad\nkey": "1"}) is NOT_HANDLED  # a name MLflow refuses
    assert fast.log(run_id, tags={"mlflow.runName": "other"}) is NOT_HANDLED  # kept twice
    made = fast.create_run(
        experiment_id, name="r", start_time=1, tags={"mlflow.runName": "s"}, params={}, user="u"
    )
    assert made is NOT_HANDLED  # a name that differs from the tag: MLflow refuses it
    assert client.get_run(run_id).data.params == {}


def test_many_keys_in_one_pass_stay_under_sqlites_variable_limit(tmp_path) -> None:
    """SQLite builds before 3.32 bind at most 999 variables per statement (this one is set so on
    its connections): 1,500 metric keys and params in one pass go in lists of 500."""
    import sqlite3

    from sqlalchemy import event

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    store = client._tracking_client.store
    store.engine.dispose()

    def old_sqlite(connection: Any, _record: Any) -> None:
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    event.listen(store.engine, "connect", old_sqlite)
    fast = fast_path(store)
    assert fast is not None
    experiment_id = client.create_experiment("many")
    run_id, _ = fast.create_run(experiment_id, name="r", start_time=1, tags={}, params={}, user="u")
    keys = [f"m{i}" for i in range(1500)]

    answer = fast.log(
        run_id,
        params={f"p{i}": str(i) for i in range(1500)},
        points=(keys, [1.0] * 1500, [0] * 1500, [1] * 1500),
    )
    again = fast.log(run_id, points=(keys, [2.0] * 1500, [1] * 1500, [2] * 1500))

    assert answer is True and again is True
    run = client.get_run(run_id)
    assert len(run.data.params) == 1500 and set(run.data.metrics.values()) == {2.0}
