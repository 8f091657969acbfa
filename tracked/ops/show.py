"""One version or run in full (`tracked show`), and resolving NAME, NAME@ALIAS, NAME/VERSION."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from tracked import tags as T
from tracked.errors import AliasNotFoundError, ModelNotFoundError
from tracked.ops.base import InputError, Param, Result, iso, open_store, with_hint
from tracked.ops.models import registered_model, verdict, version_rows
from tracked.ops.runs import run_detail

if TYPE_CHECKING:
    from tracked.store import Store

__all__ = ["RUN_ID", "VersionDetail", "parse_ref", "resolve_version", "show_version"]

RUN_ID = re.compile(r"[0-9a-f]{32}")
_REF = re.compile(r"^(?P<name>[^@/]+?)(?:@(?P<alias>[^@/]+)|/(?P<version>[^@/]+))?$")


@dataclass(frozen=True)
class VersionDetail(Result):
    """A version's lineage and the last promotion decision recorded on it."""

    lineage: Any  # tracked.registry.lineage.Lineage
    flavor: str | None
    model_class: str | None
    decision: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        from tracked.ops.base import plain

        out = dict(plain(self.lineage))
        out["created"] = iso(out.get("created"))
        return {
            "kind": "version",
            **out,
            "flavor": self.flavor,
            "model_class": self.model_class,
            "decision": plain(self.decision),
        }


def parse_ref(ref: str, version: int | None = None) -> tuple[str, str | None, str | None]:
    """(name, alias, version) from NAME, NAME@ALIAS or NAME/VERSION; InputError otherwise."""
    text = ref.strip()
    match = _REF.match(text)
    name = match["name"] if match else text
    if ":" in text and "@" not in text and "/" not in text:
        head, _, tail = text.rpartition(":")
        raise InputError(
            "model reference",
            ref,
            f"use {head}/{tail} for a version or {head}@{tail} for an alias (NAME/VERSION, "
            "NAME@ALIAS)",
        )
    if not match or (match["version"] is not None and not match["version"].isdigit()):
        raise InputError("model reference", ref, "expected NAME, NAME@ALIAS or NAME/VERSION")
    alias, number = match["alias"], match["version"]
    if version is not None:
        if alias or number:
            raise InputError("model reference", ref, "it names a version already; drop --version")
        number = str(version)
    return name, alias, number


def resolve_version(store: Store, ref: str, version: int | None = None) -> Any:
    """The MLflow ModelVersion `ref` names; not found says what exists that is close."""
    name, alias, number = parse_ref(ref, version)
    model = registered_model(store, name)
    if number is not None:
        found = store.get_or_none(
            lambda c: c.get_model_version(name, number), what=f"read {name!r} version {number}"
        )
        if found is None:
            rows = version_rows(store, name)
            latest = f"its versions are 1 to {rows[0].version}" if rows else "it has no versions"
            error = ModelNotFoundError(name, number)
            error.args = (f"{str(error).rsplit(' (', 1)[0]} ({latest})",)
            raise error
        return found
    if alias in (None, "latest"):
        rows = version_rows(store, name)
        if not rows:
            raise ModelNotFoundError(name, "latest")
        newest = rows[0].version
        return store.call(lambda c: c.get_model_version(name, newest), what=f"read {name!r}")
    aliases = dict(getattr(model, "aliases", None) or {})
    wanted = alias if alias in aliases else alias.lower()
    if wanted not in aliases:
        raise with_hint(AliasNotFoundError(name, alias), alias, aliases)
    return store.call(
        lambda c: c.get_model_version(name, str(aliases[wanted])), what=f"read {name}@{alias}"
    )


def show_version(
    ref: Annotated[str, Param("NAME@ALIAS, NAME/VERSION, NAME (the latest version) or a run id")],
    version: Annotated[
        int | None, Param("version number, when REF is a plain NAME", flags=("--version", "-v"))
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> Any:
    """A version's (or a run's) full lineage: code, data, params, metrics, promotion decision."""
    from tracked.registry.lineage import lineage_of

    maybe_run = RUN_ID.fullmatch(ref.strip()) is not None and version is None
    if not maybe_run:
        parse_ref(ref, version)  # a malformed reference is an input error, store or no store
    with open_store(tracking_uri) as (_, store):
        if maybe_run:
            detail = run_detail(store, ref.strip(), missing_ok=True)
            if detail is not None:
                return detail
        found = resolve_version(store, ref, version)
        lineage = store.call(lambda c: lineage_of(c, found), what=f"read the lineage of {ref}")
        tags = dict(found.tags or {})
        return VersionDetail(
            lineage, tags.get(T.FLAVOR), tags.get(T.MODEL_CLASS), _decision(store, found)
        )


def _decision(store: Store, found: Any) -> dict[str, Any] | None:
    """The last decision recorded on the version: its tags, and rule by rule from its run."""
    import json
    import tempfile

    tags = found.tags or {}
    recorded_verdict = tags.get(T.PROMOTION_DECISION)
    if recorded_verdict is None:
        return None
    to = tags.get(T.PROMOTION_TO)
    out: dict[str, Any] = {
        "verdict": verdict(recorded_verdict),
        "to": to,
        "reason": tags.get(T.PROMOTION_REASON),
    }
    if found.run_id and to:
        path = f"tracked/promotion/{to}-v{found.version}.json"

        def download(client: Any) -> dict[str, Any]:
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(found.run_id, path, tmp)
                with open(local, encoding="utf-8") as fh:
                    return dict(json.load(fh))

        # the run may be deleted or its artifacts unreachable: the tags still tell the verdict
        with contextlib.suppress(Exception):
            recorded = store.call(download, what=f"read the decision of {found.name}")
            for key in ("rules", "previous", "forced"):
                if key in recorded:
                    out[key] = recorded[key]
            if "evaluated_at" in recorded:
                out["evaluated_at"] = iso(recorded["evaluated_at"], seconds=True)
    return out
