"""MLflow's SQL tracking tables written directly: the sender's fast path on a SQL store.

On the embedded SQLite store (and a PostgreSQL URI) MLflow's `SqlAlchemyStore` spends 2 to 5 ms
of Python per call building ORM objects: creating a run, logging its params, its metric points,
its status are four such calls, more than a short run's whole training. Here the same rows are
written with SQLAlchemy Core statements through MLflow's own table definitions and MLflow's own
session (its SQLite PRAGMAs, its error translation), one transaction per call, with MLflow's own
validators applied first: what MLflow stores, byte for byte.

Only the common case is done here. Anything else returns `NOT_HANDLED` and the caller uses
MLflow's client, which answers it exactly as MLflow does: an experiment or run that is missing
or deleted, a param whose value changed, a value MLflow's validators refuse, the run-name tag
(MLflow keeps it in two places), another database.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["NOT_HANDLED", "SqlFastPath", "fast_path"]

NOT_HANDLED: Any = object()  # the caller goes through MLflow's client instead
SQL_BATCH = 20_000  # points per bulk INSERT
_DIALECTS = ("sqlite", "postgresql")
_RUN_NAME = "mlflow.runName"


class _NotHandled(Exception):
    """Raised inside a transaction to roll it back and hand the call to MLflow's client."""


def fast_path(store: Any) -> SqlFastPath | None:
    """The fast path for MLflow's `SqlAlchemyStore` `store`, or None (another store, another
    database, an MLflow whose tables or validators this code does not know)."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        if type(store) is not SqlAlchemyStore:  # a subclass (workspaces) filters its queries
            return None
        if store.engine.dialect.name not in _DIALECTS:
            return None
        return SqlFastPath(store)
    except Exception:  # pragma: no cover - MLflow internals moved: MLflow's client does it all
        return None


class SqlFastPath:
    """Runs, params, tags, metric points and statuses as MLflow's SQL store keeps them."""

    def __init__(self, store: Any) -> None:
        from mlflow.store.tracking.dbmodels.models import (
            SqlExperiment,
            SqlLatestMetric,
            SqlMetric,
            SqlParam,
            SqlRun,
            SqlTag,
        )
        from mlflow.utils.validation import _validate_param, _validate_tag

        self.store = store
        self.dialect = str(store.engine.dialect.name)
        self.experiments = SqlExperiment.__table__
        self.runs = SqlRun.__table__
        self.tags = SqlTag.__table__
        self.params = SqlParam.__table__
        self.metrics = SqlMetric.__table__
        self.latest = SqlLatestMetric.__table__
        self._validate_param = _validate_param
        self._validate_tag = _validate_tag

    # -- the calls ------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        name: str,
        start_time: int,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        user: str,
    ) -> Any:
        """(run id, artifact uri) of a new RUNNING run with its tags and params, as MLflow's
        `create_run` + `log_batch` make it; NOT_HANDLED to let MLflow's client do it."""
        from mlflow.utils.uri import append_to_uri_path
        from sqlalchemy import select

        if tags.get(_RUN_NAME, name) != name:
            return NOT_HANDLED  # MLflow refuses a run name that differs from the tag
        try:
            exp_id = int(experiment_id)
            tag_rows = self._tag_rows({**tags, _RUN_NAME: name})
            param_rows = self._param_rows(params)
        except Exception:  # MLflow's validators refuse something: MLflow says what
            return NOT_HANDLED

        def write(connection: Any) -> tuple[str, str]:
            found = connection.execute(
                select(
                    self.experiments.c.artifact_location, self.experiments.c.lifecycle_stage
                ).where(self.experiments.c.experiment_id == exp_id)
            ).first()
            if found is None or found.lifecycle_stage != "active":
                raise _NotHandled
            run_id = uuid.uuid4().hex
            uri = append_to_uri_path(found.artifact_location, run_id, "artifacts")
            connection.execute(
                self.runs.insert(),
                {
                    "run_uuid": run_id,
                    "name": name,
                    "source_type": "UNKNOWN",
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": user,
                    "status": "RUNNING",
                    "start_time": start_time,
                    "end_time": None,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": "active",
                    "artifact_uri": uri,
                    "experiment_id": exp_id,
                },
            )
            connection.execute(self.tags.insert(), [{**t, "run_uuid": run_id} for t in tag_rows])
            if param_rows:
                connection.execute(
                    self.params.insert(), [{**p, "run_uuid": run_id} for p in param_rows]
                )
            return run_id, str(uri)

        return self._transaction(write)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        points: tuple[Sequence[str], Sequence[float], Sequence[int], Sequence[int]] | None = None,
    ) -> Any:
        """Params, tags and metric points of an active run in one transaction; points the store
        holds already are skipped, the latest values updated as MLflow's `log_batch` does.
        True, or NOT_HANDLED to let MLflow's client do it (each part then on its own)."""
        params, tags = params or {}, tags or {}
        if _RUN_NAME in tags:
            return NOT_HANDLED
        try:
            tag_rows = self._tag_rows(tags)
            param_rows = self._param_rows(params)
        except Exception:
            return NOT_HANDLED

        def write(connection: Any) -> bool:
            self._check_active(connection, run_id)
            if param_rows:
                self._insert_params(connection, run_id, param_rows)
            if tag_rows:
                self._upsert_tags(connection, run_id, tag_rows)
            if points is not None and points[0]:
                self._insert_points(connection, run_id, *points)
            return True

        return self._transaction(write)

    def end(self, run_id: str, status: str, end_time: int) -> Any:
        """Set an active run's status and end time (MLflow's `set_terminated`)."""

        def write(connection: Any) -> bool:
            done = connection.execute(
                self.runs.update()
                .where(self.runs.c.run_uuid == run_id, self.runs.c.lifecycle_stage == "active")
                .values(status=status, end_time=end_time)
            )
            if done.rowcount != 1:
                raise _NotHandled
            return True

        return self._transaction(write)

    # -- rows -----------------------------------------------------------------------------------

    def _transaction(self, write: Any) -> Any:
        try:  # a write session (MLflow 3 routes read-only sessions to replicas)
            managed = self.store.ManagedSessionMaker(read_only=False)
        except TypeError:  # pragma: no cover - an MLflow without the flag
            managed = self.store.ManagedSessionMaker()
        try:
            with managed as session:
                result = write(session.connection())
                session.commit()
                return result
        except _NotHandled:
            return NOT_HANDLED
        except Exception as exc:  # MLflow wraps what the session raised
            if isinstance(exc.__cause__, _NotHandled) or isinstance(exc.__context__, _NotHandled):
                return NOT_HANDLED
            raise

    def _tag_rows(self, tags: Mapping[str, str]) -> list[dict[str, str]]:
        return _validated(self._validate_tag, tags)

    def _param_rows(self, params: Mapping[str, str]) -> list[dict[str, str]]:
        return _validated(self._validate_param, params)

    def _check_active(self, connection: Any, run_id: str) -> None:
        from sqlalchemy import select

        stage = connection.execute(
            select(self.runs.c.lifecycle_stage).where(self.runs.c.run_uuid == run_id)
        ).scalar()
        if stage != "active":
            raise _NotHandled  # missing or deleted: MLflow's client says which

    def _insert_params(self, connection: Any, run_id: str, rows: list[dict[str, str]]) -> None:
        from sqlalchemy import select

        keys = [row["key"] for row in rows]
        existing: dict[str, str] = {}
        for part in _parts(keys):
            existing.update(
                connection.execute(
                    select(self.params.c.key, self.params.c.value).where(
                        self.params.c.run_uuid == run_id, self.params.c.key.in_(part)
                    )
                ).all()
            )
        if any(existing.get(row["key"], row["value"]) != row["value"] for row in rows):
            raise _NotHandled  # a changed value: MLflow refuses it, and says so
        new = [{**row, "run_uuid": run_id} for row in rows if row["key"] not in existing]
        if new:
            connection.execute(self.params.insert(), new)

    def _upsert_tags(self, connection: Any, run_id: str, rows: list[dict[str, str]]) -> None:
        statement = self._insert(self.tags)
        statement = statement.on_conflict_do_update(
            index_elements=[self.tags.c.key, self.tags.c.run_uuid],
            set_={"value": statement.excluded.value},
        )
        connection.execute(statement, [{**row, "run_uuid": run_id} for row in rows])

    def _insert_points(
        self,
        connection: Any,
        run_id: str,
        keys: Sequence[str],
        values: Sequence[float],
        steps: Sequence[int],
        timestamps: Sequence[int],
    ) -> None:
        from sqlalchemy import select

        rows = []
        best: dict[str, tuple[int, int, float, bool]] = {}
        finite = math.isfinite
        for key, value, step, timestamp in zip(keys, values, steps, timestamps, strict=True):
            is_nan = False
            if not finite(value):
                is_nan, value = self.store.sanitize_metric_value(value)
            rows.append((key, value, timestamp, step, is_nan, run_id))
            seen = best.get(key)
            if seen is None or (step, timestamp, value) > seen[:3]:
                best[key] = (step, timestamp, value, is_nan)
        metrics = self.metrics
        if self.dialect == "sqlite":
            # The driver's executemany: one prepared statement, rows bound in C.
            connection.exec_driver_sql(
                f"INSERT OR IGNORE INTO {metrics.name} "
                "(key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        else:
            names = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
            statement = self._insert(metrics).on_conflict_do_nothing()
            for start in range(0, len(rows), SQL_BATCH):
                chunk = rows[start : start + SQL_BATCH]
                connection.execute(statement, [dict(zip(names, row, strict=True)) for row in chunk])
        latest = self.latest
        existing = {}
        for part in _parts(sorted(best)):
            query = (
                select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value)
                .where(latest.c.run_uuid == run_id, latest.c.key.in_(part))
                .order_by(latest.c.key)
            )
            if self.dialect != "sqlite":
                query = query.with_for_update()
            existing.update(
                {r.key: (r.step, r.timestamp, r.value) for r in connection.execute(query)}
            )
        inserts, updates = [], []
        for key, (step, timestamp, value, is_nan) in best.items():
            row = {"key": key, "value": value, "timestamp": timestamp, "step": step}
            row["is_nan"], row["run_uuid"] = is_nan, run_id
            held = existing.get(key)
            if held is None:
                inserts.append(row)
            elif (step, timestamp, value) > held:
                updates.append(
                    {"k": key, "r": run_id, "v": value, "t": timestamp, "s": step, "n": is_nan}
                )
        if inserts:
            connection.execute(latest.insert(), inserts)
        if updates:
            from sqlalchemy import bindparam

            connection.execute(
                latest.update()
                .where(latest.c.key == bindparam("k"), latest.c.run_uuid == bindparam("r"))
                .values(
                    value=bindparam("v"),
                    timestamp=bindparam("t"),
                    step=bindparam("s"),
                    is_nan=bindparam("n"),
                ),
                updates,
            )

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ON CONFLICT."""
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)


def _validated(validate: Any, items: Mapping[str, str]) -> list[dict[str, str]]:
    """Rows of what MLflow's validator makes of each item (long values truncated as MLflow
    does); raises what it raises."""
    rows = []
    for key, value in items.items():
        checked = validate(key, value)
        rows.append({"key": checked.key, "value": checked.value})
    return rows


def _parts(keys: list[str], size: int = 500) -> list[list[str]]:
    """`keys` in lists of `size`: one IN (...) each, under SQLite's bound-variable limit (999
    before SQLite 3.32), as MLflow batches its own."""
    return [keys[i : i + size] for i in range(0, len(keys), size)]
