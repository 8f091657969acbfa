"""Where artifacts go, checked without writing: a local folder by its permissions, an S3 bucket
by reading it, the server's artifact proxy by a listing (part of `tracked doctor`)."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked.errors import TrackingError
from tracked.ops.base import Result

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.store import Store

__all__ = ["DoctorCheck", "artifact_checks", "default_root", "nearest_existing"]


@dataclass(frozen=True)
class DoctorCheck(Result):
    """One check: ok True (passed), False (failed, with a fix) or None (information, skipped)."""

    name: str
    ok: bool | None
    detail: str
    fix: str | None = None


def nearest_existing(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return candidate
    return None


def default_root(settings: Settings, store: Store) -> str | None:
    """Where a new experiment's artifacts would go: artifact_location, beside an embedded
    SQLite database, else the server's default (the artifact proxy)."""
    from tracked.store import sqlite_path

    if settings.artifact_location:
        return settings.artifact_location
    path = sqlite_path(settings.tracking_uri)
    if path is not None:
        return (path.parent / "mlartifacts").as_uri()
    return "mlflow-artifacts:/" if store.http else None


def artifact_checks(settings: Settings, store: Store, root: str | None) -> list[DoctorCheck]:
    from tracked.store import shown_uri

    if root is None:
        return [DoctorCheck("artifact store", None, "chosen by the store with the experiment")]
    shown = shown_uri(root)
    scheme = urllib.parse.urlsplit(root).scheme
    if scheme in ("", "file"):
        folder = Path(urllib.parse.unquote(urllib.parse.urlsplit(root).path) if scheme else root)
        existing = nearest_existing(folder)
        if existing is not None and os.access(existing, os.W_OK):
            detail = f"{shown}: writable (checked, nothing written)"
            return [DoctorCheck("artifact store", True, detail)]
        return [
            DoctorCheck(
                "artifact store",
                False,
                f"{shown}: {existing or folder} is not writable",
                "make the folder writable, or set artifact_location",
            )
        ]
    if scheme == "s3":
        bucket = _s3_check(root)
        detail = f"{shown}: the bucket is checked below"
        return [DoctorCheck("artifact store", bucket.ok, detail, bucket.fix), bucket]
    if scheme == "mlflow-artifacts":
        return [_proxy_check(settings, store, root)]
    return [DoctorCheck("artifact store", None, f"{shown}: not checked ({scheme} storage)")]


def _proxy_check(settings: Settings, store: Store, root: str) -> DoctorCheck:
    from tracked.store import shown_uri

    def listing(_: Any) -> int:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(root, tracking_uri=settings.tracking_uri)
        return len(repository.list_artifacts(""))

    via = f"{shown_uri(root)} (through the server's artifact proxy)"
    try:
        store.call(listing, what="list artifacts through the server's proxy")
    except TrackingError as error:
        return DoctorCheck(
            "artifact store",
            False,
            f"{via}: {getattr(error, 'reason', error)}",
            "check the server's --artifacts-destination and its credentials for it",
        )
    return DoctorCheck("artifact store", True, f"{via}: answers a listing")


def _s3_check(root: str) -> DoctorCheck:
    """The bucket behind an s3:// artifact root, with the endpoint boto3 used; read-only."""
    parsed = urllib.parse.urlsplit(root)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    # boto3's own setting (read by MLflow's S3 repository too), not a tracked setting
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    where = f"bucket {bucket} at {endpoint or 'AWS (default endpoint)'}"
    fix = (
        "check the bucket exists, AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a "
        "profile) and MLFLOW_S3_ENDPOINT_URL for a non-AWS endpoint"
    )
    try:
        import boto3
    except ImportError:
        return DoctorCheck(
            "s3 bucket", False, f"{where}: boto3 is not installed", "pip install 'tracked[s3]'"
        )
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.head_bucket(Bucket=bucket)
        s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DoctorCheck("s3 bucket", False, f"{where}: {text}", fix)
    return DoctorCheck("s3 bucket", True, f"{where}: reachable, listed (nothing written)")
