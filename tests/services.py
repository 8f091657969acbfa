"""Real backing services for tests: PostgreSQL databases, a moto S3 server and mlflow servers.

Loaded as a pytest plugin (``pytest_plugins = ["services"]``). Every fixture is session-scoped
and lazy: nothing starts until a test asks for it. When PostgreSQL, moto or a driver is missing
the test is skipped with the reason, or fails if ``TRACKED_REQUIRE_SERVICES=1``. An mlflow server
that does not become healthy always fails the test, with the tail of its log.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BUCKET = "tracked-test"
SERVER_START_TIMEOUT = 60.0
MULTI_WORKERS = 4  # `mlflow server`'s own default
LOG_TAIL_LINES = 200
SERVICE_FIXTURES = frozenset(
    {
        "postgres_server",
        "postgres_url",
        "s3_endpoint",
        "mlflow_server",
        "auth_server",
        "multi_worker_server",
    }
)
# Fixtures whose value has a ``log_path`` worth attaching to a failing test, and the section.
LOGGED_SERVER_FIXTURES = {
    "mlflow_server": "mlflow server log",
    "auth_server": "mlflow server log (auth_server)",
    "multi_worker_server": "mlflow server log (multi_worker_server)",
}


# --- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises TimeoutError naming ``what`` once ``timeout`` seconds have passed. Exceptions from
    the predicate propagate, so a predicate can abort the wait (e.g. the process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg2://...``) into one libpq/psycopg2 accepts."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def unavailable(reason: str) -> None:
    """Skip the test for a missing service, or fail it when services are required."""
    if os.environ.get("TRACKED_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} [TRACKED_REQUIRE_SERVICES=1]", pytrace=False)
    pytest.skip(reason)


def _require_module(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        unavailable(f"{module} is not importable (pip install '{install}')")


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _start(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own process group, so stopping it also stops the workers the server forks.
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it outlives ``grace`` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)
    except ProcessLookupError:
        pass


def _wait_for_server(
    process: subprocess.Popen[bytes], url: str, log_path: Path, what: str, timeout: float
) -> float:
    """Wait until ``url`` answers 200; fail the test with the log tail otherwise."""
    started = time.monotonic()

    def healthy() -> bool:
        if process.poll() is not None:
            raise ChildProcessError(f"{what} exited with code {process.returncode}")
        return _answers_http(url)

    try:
        wait_until(healthy, timeout, f"{what} at {url}")
        return time.monotonic() - started
    except (TimeoutError, ChildProcessError) as exc:
        error = str(exc)
    _stop(process)
    pytest.fail(
        f"{error}\n--- last {LOG_TAIL_LINES} lines of {log_path} ---\n{log_tail(log_path)}",
        pytrace=False,
    )


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A reachable PostgreSQL server that hands out fresh databases and drops them later."""

    url: str
    created: list[str] = field(default_factory=list)

    def _connect(self) -> Any:
        import psycopg2

        connection = psycopg2.connect(libpq_url(self.url), connect_timeout=3)
        connection.autocommit = True
        return connection

    def create_database(self) -> str:
        """Create ``tracked_test_<hex>`` and return its SQLAlchemy URL (psycopg2 driver)."""
        name = f"tracked_test_{secrets.token_hex(6)}"
        with closing(self._connect()) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the driver we ship with.
        parts = urlsplit(libpq_url(self.url))
        return urlunsplit(parts._replace(scheme="postgresql+psycopg2", path=f"/{name}"))

    def drop_created(self) -> None:
        with closing(self._connect()) as connection, connection.cursor() as cursor:
            force = " WITH (FORCE)" if connection.server_version >= 130000 else ""
            for name in reversed(self.created):
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server at TRACKED_TEST_POSTGRES_URL; drops the databases it created."""
    _require_module("psycopg2", "tracked[postgres]")
    url = os.environ.get("TRACKED_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    server = PostgresServer(url)
    error = None
    try:
        server._connect().close()
    except Exception as exc:
        error = " ".join(str(exc).split()) or type(exc).__name__
    if error is not None:  # outside the except block, so the skip does not chain a traceback
        unavailable(f"PostgreSQL not reachable at {url}: {error} (set TRACKED_TEST_POSTGRES_URL)")
    yield server
    server.drop_created()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a fresh, empty database, dropped at the end of the session."""
    return postgres_server.create_database()


# --- S3 (moto) -----------------------------------------------------------------------------


@dataclass
class S3Endpoint:
    """A moto S3 server with one bucket, and the env vars that point boto3/mlflow at it."""

    url: str
    bucket: str
    env: dict[str, str]
    log_path: Path

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A separate ``moto.server`` process on a free loopback port with bucket ``tracked-test``."""
    _require_module("moto", "moto[server]")
    _require_module("flask", "moto[server]")
    _require_module("boto3", "tracked[s3]")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    process = _start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        log_path,
        dict(os.environ),
    )
    try:
        _wait_for_server(process, url + "/", log_path, "moto S3 server", SERVER_START_TIMEOUT)
        endpoint = S3Endpoint(
            url=url,
            bucket=BUCKET,
            env={
                "MLFLOW_S3_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            log_path=log_path,
        )
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        _stop(process)


# --- mlflow servers ------------------------------------------------------------------------


@dataclass
class MlflowServer:
    """A running ``mlflow server`` backed by PostgreSQL, proxying artifacts to S3."""

    url: str
    log_path: Path
    bucket: str
    s3: S3Endpoint
    backend_store_uri: str
    startup_seconds: float


@dataclass
class AuthServer(MlflowServer):
    """An ``mlflow server --app-name basic-auth``; its user store is another database."""

    admin_username: str = "admin"
    admin_password: str = ""
    auth_database_uri: str = ""

    def create_user(self, username: str, password: str) -> dict[str, Any]:
        """Create a user through the REST API as the admin; returns the server's user JSON."""
        import json

        token = b64encode(f"{self.admin_username}:{self.admin_password}".encode()).decode()
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.load(response)["user"])
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise RuntimeError(f"creating user {username!r} failed: {exc.code} {body}") from None


def _start_mlflow_server(
    backend_store_uri: str,
    s3: S3Endpoint,
    log_dir: Path,
    extra_args: Sequence[str] = (),
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> tuple[subprocess.Popen[bytes], MlflowServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "mlflow-server.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        f"s3://{s3.bucket}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *extra_args,
    ]
    env = {
        **os.environ,
        **s3.env,
        # The job runner (GenAI evaluation/optimisation) forks ~7 huey consumers; tracking
        # does not use it, and they would compete for the CPU with the tests.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # PostgreSQL allows 100 connections; every server process keeps a SQLAlchemy pool (5 + 10
        # overflow by default), and the session runs several servers with several workers.
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "2",
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "4",
        **(extra_env or {}),
    }
    # Inherited values would override the ini file or point the server somewhere else.
    for inherited in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
    ):
        env.pop(inherited, None)
    process = _start(command, log_path, env)
    seconds = _wait_for_server(
        process, url + "/health", log_path, "mlflow server", SERVER_START_TIMEOUT
    )
    server = MlflowServer(url, log_path, s3.bucket, s3, backend_store_uri, seconds)
    return process, server


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_url: str, s3_endpoint: S3Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """``mlflow server`` on ``postgres_url`` with artifacts proxied to ``s3://tracked-test/mlflow``."""
    process, server = _start_mlflow_server(
        postgres_url, s3_endpoint, tmp_path_factory.mktemp("mlflow-server")
    )
    try:
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def multi_worker_server(
    postgres_server: PostgresServer,
    s3_endpoint: S3Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MlflowServer]:
    """Like ``mlflow_server`` (own database, same bucket) with ``--workers 4``, mlflow's default:
    several server processes race on the same rows, as in a real deployment."""
    process, server = _start_mlflow_server(
        postgres_server.create_database(),
        s3_endpoint,
        tmp_path_factory.mktemp("multi-worker-server"),
        workers=MULTI_WORKERS,
        # SQLAlchemy's default pools (5 + 10 overflow per engine, several engines per worker)
        # let 4 workers under load take most of PostgreSQL's default 100 connections.
        extra_env={
            "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "3",
            "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "2",
        },
    )
    try:
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def auth_server(
    postgres_server: PostgresServer,
    s3_endpoint: S3Endpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthServer]:
    """``mlflow server --app-name basic-auth`` on its own databases (runs and users)."""
    _require_module("flask_wtf", "mlflow[auth]")
    log_dir = tmp_path_factory.mktemp("auth-server")
    backend_store_uri = postgres_server.create_database()
    auth_database_uri = postgres_server.create_database()
    admin_username, admin_password = "admin", f"admin-{secrets.token_hex(12)}"
    config_path = log_dir / "basic_auth.ini"
    config_path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {auth_database_uri}\n"
        f"admin_username = {admin_username}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    process, server = _start_mlflow_server(
        backend_store_uri,
        s3_endpoint,
        log_dir,
        extra_args=["--app-name", "basic-auth"],
        extra_env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
            # basic-auth refuses to start without a static key for its CSRF protection.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        },
    )
    try:
        yield AuthServer(
            **vars(server),
            admin_username=admin_username,
            admin_password=admin_password,
            auth_database_uri=auth_database_uri,
        )
    finally:
        _stop(process)


# --- hooks ---------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a service fixture ``services`` (tryfirst: before ``-m`` selects)."""
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of the mlflow server log to a failed test that used a server."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name, section in LOGGED_SERVER_FIXTURES.items():
            server = funcargs.get(name)
            if server is not None:
                report.sections.append((section, log_tail(Path(server.log_path))))
    return report
