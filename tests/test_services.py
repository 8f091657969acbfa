"""The service fixtures themselves: real PostgreSQL, moto S3 and mlflow servers."""

from __future__ import annotations

import secrets
import sys
import time
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest
import services
from services import AuthServer, MlflowServer, free_port, libpq_url, wait_until

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "ready"])
    assert wait_until(lambda: next(answers), timeout=5, what="readiness", interval=0) == "ready"


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, timeout=0.05, what="the moon", interval=0.01)


def test_a_server_that_dies_fails_the_test_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = services._start(
        [sys.executable, "-c", "print('no backend store'); raise SystemExit(3)"], log, {}
    )
    with pytest.raises(pytest.fail.Exception, match=r"exited with code 3(?s:.*)no backend store"):
        services._wait_for_server(process, "http://127.0.0.1:9/", log, "server", timeout=30)


def test_failed_report_carries_the_server_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {n}\n" for n in range(300)))
    item = SimpleNamespace(funcargs={"mlflow_server": SimpleNamespace(log_path=log)})
    report = pytest.TestReport(
        nodeid="t", location=("t", 0, "t"), keywords={}, outcome="failed", longrepr="x", when="call"
    )
    hook = services.pytest_runtest_makereport(item, None)  # type: ignore[arg-type]
    next(hook)
    with pytest.raises(StopIteration) as stop:
        hook.send(report)
    assert stop.value.value is report
    [(title, text)] = report.sections
    assert title == "mlflow server log"
    assert text.splitlines() == [f"line {n}" for n in range(100, 300)]


def query(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    import psycopg2

    connection = psycopg2.connect(libpq_url(url), connect_timeout=3)
    with closing(connection), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def test_service_tests_are_marked(postgres_url: str, request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("services") is not None


def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg2://")
    [(name,)] = query(postgres_url, "SELECT current_database()")
    assert str(name).startswith("tracked_test_")


def test_mlflow_server_keeps_runs_in_postgres_and_artifacts_in_s3(
    mlflow_server: MlflowServer, postgres_url: str, tmp_path: Path
) -> None:
    import mlflow
    import requests

    print(f"mlflow server started in {mlflow_server.startup_seconds:.1f}s")
    assert requests.get(f"{mlflow_server.url}/health", timeout=10).text == "OK"

    client = mlflow.MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment(f"services-{secrets.token_hex(4)}")
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    artifact = tmp_path / "hello.txt"
    artifact.write_text("hello")
    client.log_artifact(run_id, str(artifact))
    client.log_param(run_id, "alpha", "0.5")
    client.set_terminated(run_id)

    listing = mlflow_server.s3.client().list_objects_v2(
        Bucket=mlflow_server.bucket, Prefix=f"mlflow/{experiment_id}/{run_id}/"
    )
    keys = [entry["Key"] for entry in listing.get("Contents", [])]
    assert keys == [f"mlflow/{experiment_id}/{run_id}/artifacts/hello.txt"]

    runs = query(postgres_url, "SELECT experiment_id, status FROM runs WHERE run_uuid = %s", run_id)
    assert runs == [(int(experiment_id), "FINISHED")]
    params = query(postgres_url, "SELECT key, value FROM params WHERE run_uuid = %s", run_id)
    assert params == [("alpha", "0.5")]


def test_auth_server_checks_basic_auth(auth_server: AuthServer) -> None:
    import requests

    print(f"auth server started in {auth_server.startup_seconds:.1f}s")
    url = auth_server.url + SEARCH
    admin = (auth_server.admin_username, auth_server.admin_password)

    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=(admin[0], "not-the-password"), timeout=10).status_code == 401
    assert requests.get(url, auth=admin, timeout=10).status_code == 200

    username, password = f"user-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    assert requests.get(url, auth=(username, password), timeout=10).status_code == 401
    created = auth_server.create_user(username, password)
    assert created["username"] == username
    assert requests.get(url, auth=(username, password), timeout=10).status_code == 200


def test_stop_terminates_without_waiting_out_the_grace_period() -> None:
    # SIGTERM to the process group ends it at once; the grace period is only an upper bound.
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    started = time.monotonic()
    services._stop(process, grace=5)
    assert process.returncode is not None
    assert time.monotonic() - started < 5
