"""What the capture-fidelity tests read back from a store the same way."""

from __future__ import annotations

from typing import Any


def artifact_files(client: Any, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run, as paths relative to its root."""
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found += artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


def history(store: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every stored point of `key`, in step order."""
    return sorted((m.step, m.value) for m in store.metric_history(run_id, key))


def children(store: Any, run_id: str) -> list[Any]:
    """The child runs of `run_id` in training order (their names: `<run>/<k>-<call>`)."""
    client = store.client
    parent = client.get_run(run_id)
    found = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return sorted(found, key=lambda r: int(r.info.run_name.rsplit("/", 1)[1].split("-", 1)[0]))
