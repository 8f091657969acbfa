"""Registry writes that move aliases or delete versions, under the project's promotion rules.

Policies come from the project's configuration (`[tool.tracked.policies]`: alias = "module:attr",
see tracked/config.py); only the modules it names are imported. A promotion to an alias that has
a configured policy always evaluates it. On the command line a person may name another policy
(`--policy`) or force a refused promotion (`--force`, recorded as forced); an agent (the MCP tool)
can do neither, and may promote only to an alias that has a configured policy.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from tracked.config import did_you_mean, project_root
from tracked.errors import PolicyError
from tracked.ops.base import InputError, Param, Result, guarded, iso, open_store, plain
from tracked.ops.models import ModelName, registered_model

if TYPE_CHECKING:
    from tracked.config import Settings
    from tracked.registry.policy import PromotionPolicy

__all__ = [
    "GcResult",
    "Promotion",
    "Rollback",
    "configured_policies",
    "gc",
    "load_policy",
    "promote",
    "rollback",
]

_STAGES = {"staging": "Staging", "production": "Production", "archived": "Archived", "none": "None"}


@dataclass(frozen=True)
class Promotion(Result):
    decision: Any  # tracked.registry.policy.Decision
    policy: str | None  # which policy judged it, and where it came from

    @property
    def ok(self) -> bool:
        return bool(self.decision.promoted)

    def to_dict(self) -> dict[str, Any]:
        out = dict(plain(self.decision))
        out["evaluated_at"] = iso(out.get("evaluated_at"), seconds=True)
        return {**out, "policy": self.policy, "summary": self.decision.summary()}


@dataclass(frozen=True)
class Rollback(Result):
    model: str
    alias: str
    version: str
    previous: str | None


@dataclass(frozen=True)
class GcResult(Result):
    model: str
    keep: int
    dry_run: bool
    deleted: list[str]
    kept: list[str]
    protected: list[str]


# --------------------------------------------------------------------------- policies


def load_policy(spec: str) -> Any:
    """The PromotionPolicy (or list of them) that "module:attribute" names in the project.

    The module is imported from the project's folder (the nearest pyproject.toml's) or the
    working directory.
    """
    from tracked.registry.policy import PromotionPolicy

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PolicyError(f"tracked: policy {spec!r} is not MODULE:ATTRIBUTE (e.g. policies:prod)")
    for folder in dict.fromkeys((os.getcwd(), str(project_root()))):
        if folder not in sys.path:
            sys.path.insert(0, folder)  # the project's own modules, as `python -m` would find
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PolicyError(
            f"tracked: policy {spec!r}: cannot import {module_name!r} ({exc})"
        ) from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            names = [n for n in dir(value) if not n.startswith("_")]
            hint = did_you_mean(part, names)
            raise PolicyError(f"tracked: policy {spec!r}: {module_name} has no {part!r}{hint}")
        value = getattr(value, part)
    policies = value if isinstance(value, (list, tuple)) else [value]
    if not policies or not all(isinstance(p, PromotionPolicy) for p in policies):
        raise PolicyError(
            f"tracked: policy {spec!r} is a {type(value).__name__}, "
            "not a PromotionPolicy or a list of them"
        )
    return value


def configured_policies(settings: Settings) -> dict[str, PromotionPolicy]:
    """alias -> the PromotionPolicy the project configured for it (`policies` setting).

    Imports only the modules the configuration names. A spec that names a list picks the
    policy whose `to` is the alias; one whose policy moves another alias is a PolicyError.
    """
    origin = settings.origins.get("policies", "configuration")
    out = {}
    for alias, spec in settings.policies.items():
        try:
            loaded = load_policy(spec)
        except PolicyError as error:
            raise PolicyError(f"{error} (policies.{alias}, from {origin})") from None
        candidates = loaded if isinstance(loaded, (list, tuple)) else [loaded]
        chosen = next((p for p in candidates if p.to.lower() == alias), None)
        if chosen is None:
            moves = ", ".join(sorted({p.to for p in candidates}))
            raise PolicyError(
                f"tracked: policies.{alias} = {spec!r} (from {origin}) moves {moves}, not {alias!r}"
            )
        out[alias] = chosen
    return out


def _stage(value: str | None) -> str | None:
    if value is None:
        return None
    canonical = _STAGES.get(value.strip().lower())
    if canonical is None:
        hint = did_you_mean(value.lower(), _STAGES)
        raise InputError("stage", value, f"use Staging, Production, Archived or None{hint}")
    return canonical


def _keep(value: int) -> None:
    if value < 0:
        raise InputError("--keep", value, "how many versions to keep: 0 or more")


# --------------------------------------------------------------------------- operations


def promote(
    name: ModelName,
    version: Annotated[int, Param("version number to promote")],
    to: Annotated[
        str | None,
        Param("alias to move onto the version (default: the champion_alias setting)", ("--to",)),
    ] = None,
    policy: Annotated[
        str | None,
        Param(
            "MODULE:ATTRIBUTE of another PromotionPolicy (or list) to judge by (default: the "
            "one configured for the alias in [tool.tracked.policies]; without one the alias "
            "moves on request)",
            flags=("--policy",),
            tool=False,
            check=load_policy,
        ),
    ] = None,
    stage: Annotated[
        str | None,
        Param(
            "also move the legacy MLflow stage (Staging, Production, Archived, None)",
            flags=("--stage",),
            check=_stage,
        ),
    ] = None,
    force: Annotated[
        bool, Param("move the alias even if rules fail (recorded as forced)", tool=False)
    ] = False,
    *,
    tracking_uri: str | None = None,
    agent: bool = False,
) -> Promotion:
    """Move an alias onto a version if the policy's rules pass; the decision, rule by rule."""
    from tracked.registry import lifecycle

    with open_store(tracking_uri) as (settings, store):
        alias = to or settings.champion_alias
        registered_model(store, name)  # unknown names get suggestions before anything moves
        judged_by: str | None
        if policy is not None:
            loaded, judged_by = load_policy(policy), f"--policy {policy}"
        else:
            loaded = configured_policies(settings).get(alias.lower())
            spec = settings.policies.get(alias.lower())
            judged_by = f"policies.{alias.lower()} = {spec}" if loaded is not None else None
        if agent and loaded is None:
            raise PolicyError(
                f"tracked: refused: no promotion policy is configured for alias {alias!r}; an "
                "agent promotes only under the project's rules (add it to "
                "[tool.tracked.policies], or promote with `tracked promote` as a person)"
            )
        decision = guarded(
            store,
            f"promote {name!r} version {version} to {alias!r}",
            lambda: lifecycle.promote(
                name,
                version,
                to=alias,
                policy=loaded,
                force=force and not agent,
                stage=_stage(stage),
                tracking_uri=settings.tracking_uri,
            ),
        )
    return Promotion(decision, judged_by)


def rollback(
    name: ModelName,
    alias: Annotated[
        str | None,
        Param("alias to move back (default: the champion_alias setting)", flags=("--alias",)),
    ] = None,
    *,
    tracking_uri: str | None = None,
) -> Rollback:
    """Move an alias back to the version that held it before."""
    from tracked.registry import lifecycle

    with open_store(tracking_uri) as (settings, store):
        wanted = alias or settings.champion_alias
        model = registered_model(store, name)
        held = dict(getattr(model, "aliases", None) or {})
        previous = held.get(wanted, held.get(wanted.lower()))
        version = guarded(
            store,
            f"roll back {wanted!r} of {name!r}",
            lambda: lifecycle.rollback(name, wanted, tracking_uri=settings.tracking_uri),
        )
    return Rollback(name, wanted, str(version), None if previous is None else str(previous))


def gc(
    name: ModelName,
    keep: Annotated[
        int, Param("how many of the newest versions to keep", flags=("--keep",), check=_keep)
    ],
    dry_run: Annotated[
        bool,
        Param("only say what would be deleted (the default)", flags=("--dry-run/--delete",)),
    ] = True,
    *,
    tracking_uri: str | None = None,
) -> GcResult:
    """Delete all but the newest versions; never one with an alias or in a rollback history."""
    from tracked.registry import lifecycle

    _keep(keep)
    with open_store(tracking_uri) as (settings, store):
        registered_model(store, name)
        report = guarded(
            store,
            f"delete old versions of {name!r}",
            lambda: lifecycle.gc(name, keep, dry_run=dry_run, tracking_uri=settings.tracking_uri),
        )
    return GcResult(name, keep, dry_run, report.deleted, report.kept, report.protected)
