"""One way a run is finished, live or replayed: save models -> log them -> register -> promote
-> end the run -> remove the journal.

A live run calls `save_models` (it holds the model objects) and then `publish` before its block
returns; `tracked sync` reaches the same `publish` through `complete` for a journal whose process
is gone. Each step is recorded in the journal's cursor when it is done (`Shipment.mark`), so a
step interrupted anywhere runs again without doing twice what it already did: a model is logged
once, a version registered once (found again by its run id), a promotion decided once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracked import journal as J
from tracked import tags as T
from tracked.errors import NotFoundError, StoreRejectedError, TrackingError
from tracked.journal import Kind
from tracked.record import DatasetInput, ModelCapture, RunRecord, Slot

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tracked.problems import Problems
    from tracked.registry.policy import Decision
    from tracked.sender import Shipment

__all__ = ["Published", "complete", "fold", "publish", "save_models"]


@dataclass
class Published:
    """What publishing a run's models did."""

    models: dict[str, str] = field(default_factory=dict)  # "slot:name" -> logged model id
    model_name: str | None = None
    model_version: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    decision_lines: list[str] = field(default_factory=list)


# -- saving (live runs only: they hold the objects) ---------------------------------------------


def save_models(
    journal: J.Journal,
    models: Sequence[ModelCapture],
    *,
    example: Any,
    problems: Problems,
    logged: Sequence[tuple[Any, str, str, str]] = (),
) -> list[ModelCapture]:
    """Save each model object into the journal in its flavor's format; returns those saved.

    A model of the run itself that MLflow's own code already logged into the run (`logged`:
    (object, logged model id, flavor, serialization), from autolog or `mlflow.<flavor>.log_model`)
    is not saved again: its capture points at that logged model, which is registered instead.
    A model that cannot be saved is reported (the run is recorded without it); the others are
    still saved.
    """
    from tracked.models.flavors import save_model

    saved = []
    for capture in models:
        if capture.obj is None or capture.directory is not None:
            continue
        cls = type(capture.obj)
        known = next((entry for entry in logged if entry[0] is capture.obj), None)
        if known is not None and capture.slot == 0:
            _, capture.logged_model_id, capture.flavor, capture.serialization = known
            capture.model_class = f"{cls.__module__}.{cls.__qualname__}"
            journal.event(Kind.MODEL, model_frame(capture))
            saved.append(capture)
            continue
        target = journal.model_dir(capture.slot, capture.name)
        use = capture.input_example if capture.input_example is not None else example
        try:
            extra = {"tokenizer": capture.tokenizer} if capture.tokenizer is not None else {}
            result = save_model(capture.obj, str(target), input_example=use, **extra)
        except TrackingError as error:
            problems.failed(
                error, consequence="the run is recorded without this model", raise_strict=False
            )
            problems.defer(error)
            continue
        capture.flavor, capture.serialization = result.flavor, result.serialization
        capture.directory = os.path.relpath(target, journal.directory)
        if getattr(result, "note", None):
            problems.note("model-format", f"tracked: model {capture.name!r}: {result.note}")
        capture.model_class = f"{cls.__module__}.{cls.__qualname__}"
        journal.event(Kind.MODEL, model_frame(capture))
        saved.append(capture)
    return saved


def model_frame(capture: ModelCapture) -> dict[str, Any]:
    return {
        "slot": capture.slot,
        "name": capture.name,
        "dir": capture.directory,
        "flavor": capture.flavor,
        "serialization": capture.serialization,
        "register": capture.register,
        "class": capture.model_class,
        "model_id": capture.logged_model_id,
    }


# -- publishing (live and replayed) -------------------------------------------------------------


def publish(
    shipment: Shipment,
    record: RunRecord,
    models: Sequence[Mapping[str, Any]],
    intent: Mapping[str, Any] | None,
    *,
    policies: Sequence[Any] | None = None,
) -> Published:
    """Log the run's saved models, register the chosen one, apply its promotion policies.

    `policies` are the live run's PromotionPolicy objects; a replay rebuilds them from the
    intent (data, never code). Raises StoreUnavailableError when the store fails: what was done
    is marked, the rest runs again later.
    """
    out = Published()
    intent = intent or {}
    store = shipment.store
    if shipment.end is None and any(
        int(m["slot"]) != 0 and int(m["slot"]) not in shipment.children for m in models
    ):
        # A live run whose sender has not yet read which trainings became child runs: catch
        # up first, so that each training's model goes to its own child run, not the parent.
        shipment.pump()
    for model in models:
        key = f"model:{model['slot']}:{model['name']}"
        done = shipment.done(key)
        if done is None:
            run_id = shipment.ensure_run(int(model["slot"]))
            done = _log_model(shipment, record, run_id, model)
            shipment.mark(key, done)
        out.models[f"{model['slot']}:{model['name']}"] = done["model_id"]
    chosen = _chosen(models, intent)
    if chosen is None or record.status != "FINISHED" or not intent.get("register", True):
        if intent.get("policies") and record.status == "FINISHED":
            out.decision_lines = ["not promoted: no model was registered"]
        return out
    registered = shipment.done("registered")
    if registered is None:
        logged = shipment.done(f"model:{chosen['slot']}:{chosen['name']}")
        registered = _register(shipment, record, chosen, logged, intent)
        shipment.mark("registered", registered)
    out.model_name, out.model_version = registered["name"], str(registered["version"])
    promoted = shipment.done("promoted")
    if promoted is not None:
        out.decision_lines = list(promoted)
        return out
    if policies is None:
        policies = _policies_from(intent, out)
    if policies:
        from tracked.registry.lifecycle import apply_policies

        decisions = apply_policies(
            store, str(out.model_name), str(out.model_version), list(policies)
        )
        out.decisions = list(decisions)
        out.decision_lines = [
            f"{d.to}: {'promoted' if d.promoted else 'refused'} ({d.reason})" for d in decisions
        ]
        _describe(shipment, record, registered, out.decisions)
    shipment.mark("promoted", out.decision_lines)
    return out


def _chosen(
    models: Sequence[Mapping[str, Any]], intent: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The model to register: the one the intent names, else the main run's first."""
    wanted = intent.get("model")
    for model in models:
        if wanted and [int(model["slot"]), model["name"]] == list(wanted):
            return model
    if wanted:
        return None
    for model in models:
        if int(model["slot"]) == 0 and model.get("register", True):
            return model
    return None


def _log_model(
    shipment: Shipment, record: RunRecord, run_id: str, model: Mapping[str, Any]
) -> dict[str, Any]:
    """Create MLflow 3's logged-model entity for a saved model, linked to its run, with the
    run's params and metrics, upload the model into it, and mark it READY."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
    from mlflow.models import Model

    if model.get("model_id"):
        return _adopt_model(shipment, record, run_id, model)
    local = shipment.directory / str(model["dir"])
    slot = int(model["slot"])
    shipment.ensure_run(0)
    experiment_id = str(shipment.cursor["experiment_id"])
    latest = record.latest if slot == 0 or slot not in record.slots else record.slots[slot].latest
    params = record.params if slot == 0 or slot not in record.slots else record.slots[slot].params
    model_tags = _model_tags(record, model)

    def create(client: MlflowClient) -> Any:
        return client.create_logged_model(
            experiment_id,
            name=str(model["name"]),
            source_run_id=run_id,
            tags=model_tags,
            params=dict(list(params.items())[:100]),
            model_type=str(model.get("flavor")),
        )

    def find(client: MlflowClient) -> Any:
        # A create whose answer was lost: the model this run logged under this name, if made.
        made = client.search_logged_models(
            [experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{model['name']}'",
            max_results=1,
        )
        return made[0] if made else None

    store = shipment.store
    logged = store.call(
        create,
        what=f"create logged model {model['name']!r}",
        idempotent=False,
        found=None if "'" in str(model["name"]) else find,
    )
    conf = Model.load(str(local))
    conf.run_id, conf.model_id, conf.model_uuid = run_id, logged.model_id, logged.model_id
    conf.artifact_path = logged.artifact_location
    conf.save(os.path.join(local, "MLmodel"))
    store.call(
        lambda c: c.log_model_artifacts(logged.model_id, str(local)),
        what=f"upload model {model['name']!r}",
    )
    metrics = [
        Metric(k, p.value, p.timestamp, p.step, model_id=logged.model_id, run_id=run_id)
        for k, p in list(latest.items())[:1000]
    ]

    def output(client: MlflowClient) -> bool:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return True

    def linked(client: MlflowClient) -> bool | None:
        outputs = client.get_run(run_id).outputs
        found = outputs.model_outputs if outputs is not None else []
        return True if any(o.model_id == logged.model_id for o in found) else None

    def finalize(client: MlflowClient) -> None:
        if metrics:
            client.log_batch(run_id, metrics=metrics, synchronous=True)
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

    what = f"link model {model['name']!r} to its run"
    try:
        # Not sent twice: the store refuses a second link (a duplicate key), so an answer lost
        # on the way back is looked for first.
        store.call(output, what=what, idempotent=False, found=linked)
    except StoreRejectedError:
        if not store.get_or_none(linked, what=what):
            raise
        # linked by an earlier attempt (a replay after a crash right after it): done
    store.call(finalize, what=what)
    writer = shipment.writer
    writer.set_tags(
        run_id,
        {
            T.model_tag(str(model["name"]), "flavor"): str(model.get("flavor")),
            T.model_tag(str(model["name"]), "serialization"): str(model.get("serialization")),
            T.model_tag(str(model["name"]), "id"): str(logged.model_id),
        },
    )
    return {"model_id": logged.model_id, "source": _version_source(store, logged)}


def _model_tags(record: RunRecord, model: Mapping[str, Any]) -> dict[str, str]:
    """The tags tracked puts on a logged model, its own or one MLflow's code logged."""
    tags = {
        T.FLAVOR: str(model.get("flavor")),
        T.RUN_UUID: record.run_uuid,
        T.MODEL_SERIALIZATION: str(model.get("serialization")),
    }
    if model.get("class"):
        tags[T.MODEL_CLASS] = str(model["class"])
    return tags


def _adopt_model(
    shipment: Shipment, record: RunRecord, run_id: str, model: Mapping[str, Any]
) -> dict[str, Any]:
    """A model MLflow's own code logged into the run (autolog): tracked's tags on it and on the
    run, and the source to register it from; nothing is uploaded a second time."""
    model_id = str(model["model_id"])
    model_tags = _model_tags(record, model)

    def tag(client: MlflowClient) -> Any:
        client.set_logged_model_tags(model_id, model_tags)
        return client.get_logged_model(model_id)

    logged = shipment.store.call(tag, what=f"tag logged model {model['name']!r}")
    shipment.writer.set_tags(
        run_id,
        {
            T.model_tag(str(model["name"]), "flavor"): str(model.get("flavor")),
            T.model_tag(str(model["name"]), "serialization"): str(model.get("serialization")),
            T.model_tag(str(model["name"]), "id"): model_id,
        },
    )
    return {"model_id": model_id, "source": _version_source(shipment.store, logged)}


def _version_source(store: Any, logged: Any) -> str:
    """What a version is registered from: `models:/<id>`, which MLflow's UI links to the logged
    model, where the registry can resolve it; else the logged model's artifact location. A
    server resolves it itself; a local registry asks MLflow's global tracking URI, which need
    not be this store (an embedded store outside the working directory)."""
    if store.http:
        return f"models:/{logged.model_id}"
    from mlflow.tracking._tracking_service import utils

    from tracked.store import sqlite_path

    here = sqlite_path(store.uri)
    if here is not None and sqlite_path(utils.get_tracking_uri()) == here:
        return f"models:/{logged.model_id}"
    return str(logged.artifact_location)


def _register(
    shipment: Shipment,
    record: RunRecord,
    chosen: Mapping[str, Any],
    logged: Mapping[str, Any],
    intent: Mapping[str, Any],
) -> dict[str, Any]:
    from tracked.registry.versions import register_run_model

    run_id = shipment.ensure_run(int(chosen["slot"]))
    version = register_run_model(
        shipment.store,
        record,
        run_id=run_id,
        source=str(logged["source"]),
        flavor=str(chosen.get("flavor")),
        naming=str(intent.get("naming") or "{project}-{name}"),
        reuse_existing=True,
        model_id=str(logged["model_id"]),
        description=version_description(record, run_id, decisions=()),
        extra_tags={T.MODEL_CLASS: str(chosen.get("class") or "")},
    )
    shipment.writer.set_tags(
        shipment.ensure_run(0),
        {T.MODEL_NAME: version.name, T.MODEL_VERSION: str(version.version)},
    )
    listed = json.dumps([{"name": version.name, "version": str(version.version)}])
    shipment.store.call(  # what MLflow's own register_model records on the logged model
        lambda c: c.set_logged_model_tags(
            str(logged["model_id"]), {"mlflow.modelVersions": listed}
        ),
        what="link the logged model to its version",
    )
    return {"name": version.name, "version": str(version.version)}


def _policies_from(intent: Mapping[str, Any], out: Published) -> list[Any]:
    """The promotion policies a replayed run carries, rebuilt from data."""
    specs = intent.get("policies") or []
    if not specs:
        return []
    from tracked.registry.policy import PromotionPolicy

    policies = []
    for spec in specs:
        if spec.get("format") == 0:  # kept as text only (a 0.1 pickle, a policy-like object)
            reason = spec.get("reason") or "it was not stored as data"
            out.decision_lines.append(f"not promoted: {spec.get('text')} ({reason})")
            continue
        try:
            policies.append(PromotionPolicy.from_dict(spec))
        except Exception as exc:  # a policy from another tracked version, say
            out.decision_lines.append(f"not promoted: the stored policy cannot be read ({exc})")
    return policies


def _describe(
    shipment: Shipment,
    record: RunRecord,
    registered: Mapping[str, Any],
    decisions: Sequence[Decision],
) -> None:
    """Rewrite the version's description with the promotion decisions in it."""
    run_id = shipment.ensure_run(0)
    text = version_description(record, run_id, decisions=decisions)
    shipment.store.call(
        lambda c: c.update_model_version(
            registered["name"], str(registered["version"]), description=text
        ),
        what="describe the version",
    )


def version_description(
    record: RunRecord, run_id: str, *, decisions: Sequence[Decision] = ()
) -> str:
    """A short markdown story of a version: decisions rule by rule, key metrics, data, code."""
    lines: list[str] = [f"**Run** `{record.name}` (`{run_id}`), project `{record.project}`"]
    for decision in decisions:
        verdict = "promoted" if decision.promoted else "refused"
        forced = " (forced)" if getattr(decision, "forced", False) else ""
        lines += ["", f"**{decision.to}: {verdict}{forced}**: {decision.reason}"]
        for rule in getattr(decision, "rules", ()):
            mark = "pass" if rule.passed else "FAIL"
            lines.append(f"- {mark} {rule.rule}: {rule.reason}")
    metrics = record.latest_metrics()
    if metrics:
        key = record.tags.get(T.KEY_METRIC)
        ordered = sorted(metrics, key=lambda k: (k != key, k))[:12]
        lines += ["", "**Metrics**", ""]
        lines += [f"- `{k}` = {metrics[k]:.6g}" + (" (key)" if k == key else "") for k in ordered]
        if len(metrics) > len(ordered):
            lines.append(f"- ... {len(metrics) - len(ordered)} more on the run")
    if record.inputs:
        lines += ["", "**Data** (full-content fingerprints)", ""]
        lines += [f"- `{i.name}` ({i.context}): `{i.digest}`" for i in record.inputs[:12]]
    commit = record.tags.get(T.GIT_COMMIT)
    if commit:
        dirty = T.git_dirty(record.tags)
        state = {True: ", with uncommitted changes", False: ", clean", None: ""}[dirty]
        link = _commit_link(record.tags.get(T.GIT_REPO_URL), commit)
        shown = f"[`{commit[:12]}`]({link})" if link else f"`{commit[:12]}`"
        lines += ["", f"**Code**: commit {shown}{state}"]
    return "\n".join(lines)[:5000]


def _commit_link(remote: str | None, commit: str) -> str | None:
    """A web link to `commit` for a remote on a known host (GitHub, GitLab, Bitbucket)."""
    if not remote:
        return None
    import re

    match = re.match(
        r"^(?:https?://|git@|ssh://git@)(github\.com|gitlab\.com|bitbucket\.org)[:/](.+?)(?:\.git)?/?$",
        remote,
    )
    if not match:
        return None
    host, path = match.groups()
    kind = "commits" if host == "bitbucket.org" else "commit"
    return f"https://{host}/{path}/{kind}/{commit}"


# -- completing (after the last point) ----------------------------------------------------------


def complete(shipment: Shipment) -> None:
    """Everything of the journal is in the store: publish what a live run could not, write the
    run's status (after its last point), and remove the journal."""
    end = shipment.end or {}
    if not shipment.done("published"):
        record = shipment.record if shipment.record is not None else fold(shipment.directory)
        record.status = str(end.get("status", "KILLED"))
        publish(shipment, record, shipment.models, shipment.intent)
        if shipment.models or (shipment.intent or {}).get("policies"):
            shipment.mark("published")  # each step is marked too; this skips them all at once
    if not shipment.done("ended:0"):
        run_id = shipment.ensure_run(0)
        end_time = int(end.get("end_time") or shipment.header.get("start_time") or 0)
        # Not marked: the journal is removed next. Cut off in between, the same status and end
        # time are written again by `tracked sync`.
        shipment.writer.end(run_id, str(end.get("status", "KILLED")), end_time)
    journal = shipment.journal
    if journal is not None:
        journal.remove()
    else:
        J.remove_dir(shipment.directory)


def fold(directory: Path) -> RunRecord:
    """The RunRecord a journal describes (its points folded into latest values)."""
    from tracked.journal import Points, Reader

    reader = Reader(directory)
    record: RunRecord | None = None
    keys: list[str] = []
    for found in reader.frames(0):
        kind = found.kind
        if kind == Kind.START:
            header = found.json()
            record = RunRecord(
                # the function's name (what the registered name is made of), not the run's
                name=str(header.get("base_name") or header.get("name") or "run"),
                experiment=str(header.get("experiment") or ""),
                project=str(header.get("project") or ""),
                run_uuid=directory.name,
                experiment_id=header.get("experiment_id"),
                parent_run_id=header.get("parent_run_id"),
                parent_uuid=header.get("parent_uuid"),
                start_time=int(header.get("start_time") or 0),
                params=dict(header.get("params") or {}),
                tags=dict(header.get("tags") or {}),
                model_name=header.get("model_name"),
            )
            continue
        if record is None:
            break
        if kind == Kind.POINTS:
            chunk = Points.decode(found.payload)
            for slot, key, value, step, stamp in zip(
                chunk.slots, chunk.keys, chunk.values, chunk.steps, chunk.timestamps, strict=True
            ):
                record.note_point(slot, keys[key], value, step, stamp)
            continue
        data = found.json()
        slot = int(data.get("slot", 0))
        if kind == Kind.KEYS:
            for key_id, key in data["keys"]:
                while len(keys) <= key_id:
                    keys.append("")
                keys[key_id] = key
        elif kind == Kind.CHILD:
            record.slots[slot] = Slot(
                slot, str(data.get("name")), str(data.get("framework")), child=True
            )
        elif kind in (Kind.PARAMS, Kind.TAGS):
            name = "params" if kind == Kind.PARAMS else "tags"
            target = record if slot == 0 else record.slots.get(slot)
            if target is not None:
                getattr(target, name).update(data[name])
        elif kind == Kind.INPUTS and slot == 0:
            for item in data.get("inputs") or ():
                found_input = DatasetInput.from_dict(item)
                record.inputs = [i for i in record.inputs if i.name != found_input.name]
                record.inputs.append(found_input)
        elif kind == Kind.END and slot == 0:
            record.status = str(data.get("status"))
            record.end_time = int(data.get("end_time") or 0)
        elif kind == Kind.INTENT:
            record.model_name = data.get("model_name") or record.model_name
    if record is None:
        raise NotFoundError(f"the START of journal {directory}")
    return record


def intent_frame(
    *,
    register: bool,
    chosen: ModelCapture | None,
    naming: str,
    model_name: str | None,
    policies: Sequence[Any],
    key_metric: str | None,
) -> dict[str, Any]:
    """What the run's end should do, as data: kept in the journal for a replay."""
    specs = []
    for policy in policies:
        try:
            specs.append(policy.to_dict())
        except Exception:  # pragma: no cover - a policy-like object without to_dict
            specs.append({"format": 0, "text": repr(policy)})
    return {
        "register": register,
        "model": None if chosen is None else [chosen.slot, chosen.name],
        "naming": naming,
        "model_name": model_name,
        "policies": specs,
        "key_metric": key_metric,
    }
