"""`tracked doctor` against a real server (PostgreSQL + S3 via moto) and an s3:// artifact root."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from tracked.cli import cli


def doctor(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_doctor_on_a_server_proxying_artifacts(mlflow_server) -> None:
    from tracked.store import client_for

    client = client_for(mlflow_server.url, mlflow_server.url)

    def experiments() -> list[tuple[str, str]]:
        found = client.search_experiments(view_type=3, max_results=1000)  # active and deleted
        return sorted((e.name, e.lifecycle_stage) for e in found)

    before = experiments()
    code, report = doctor("--tracking-uri", mlflow_server.url)
    assert experiments() == before  # nothing created, nothing deleted
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, checks
    assert checks["tracking store"]["ok"] is True
    server = checks["server"]["detail"]
    assert re.search(r"mlflow \d+\.\d+", server) and "SQL database" in server
    assert "not visible" in server  # which engine, and where, the server does not say
    artifact = checks["artifact store"]
    assert artifact["ok"] is True and artifact["detail"].startswith("mlflow-artifacts:")
    assert "through the server's artifact proxy" in artifact["detail"]
    assert "writes are not tried" in checks["tracking store"]["detail"]


def test_doctor_checks_an_s3_bucket_with_its_endpoint(store, s3_endpoint, monkeypatch) -> None:
    for key, value in s3_endpoint.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TRACKED_ARTIFACT_LOCATION", f"s3://{s3_endpoint.bucket}/doctor")
    code, report = doctor()
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, checks
    assert checks["artifact store"]["detail"].startswith(f"s3://{s3_endpoint.bucket}/doctor")
    bucket = checks["s3 bucket"]
    assert bucket["ok"] is True
    assert bucket["detail"].startswith(f"bucket {s3_endpoint.bucket} at {s3_endpoint.url}")

    monkeypatch.setenv("TRACKED_ARTIFACT_LOCATION", "s3://no-such-bucket/doctor")
    code, report = doctor()
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1
    assert checks["artifact store"]["ok"] is False and "bucket" in checks["artifact store"]["fix"]
